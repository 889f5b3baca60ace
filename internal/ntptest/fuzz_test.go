package ntptest

import (
	"encoding/binary"
	"testing"
	"time"
)

// FuzzParseRequest: ParseRequest never panics, accepts only well-formed
// client requests, and the reply built for an accepted request is a
// 48-byte server-mode packet echoing the client's transmit timestamp.
func FuzzParseRequest(f *testing.F) {
	f.Add(request(4<<3|3, 0x1122334455667788, 48))
	f.Add(request(3<<3|3, 0, 48))
	f.Add(request(4<<3|3, 1, 120))
	f.Add(request(4<<3|4, 1, 48))
	f.Add(request(7<<3|3, 1, 48))
	f.Add([]byte{})
	f.Add([]byte{0x23})
	f.Add(make([]byte, 47))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseRequest(b)
		if err != nil {
			return
		}
		if len(b) < PacketSize {
			t.Fatalf("accepted a %d-byte request", len(b))
		}
		if req.Mode != ModeClient || req.Version < 1 || req.Version > 4 {
			t.Fatalf("accepted mode %d version %d", req.Mode, req.Version)
		}
		if req.Transmit != binary.BigEndian.Uint64(b[40:48]) {
			t.Fatalf("transmit %#x not taken from bytes 40-48", req.Transmit)
		}
		now := time.Now()
		out := Response{Version: req.Version, Stratum: 1, Origin: req.Transmit, Receive: now, Transmit: now}.Marshal()
		again, err := ParseRequest(out)
		if err == nil {
			t.Fatalf("a server reply parsed as a request: %+v", again)
		}
		if len(out) != PacketSize || out[0]&7 != ModeServer {
			t.Fatalf("reply header % x", out[:4])
		}
		if got := binary.BigEndian.Uint64(out[24:32]); got != req.Transmit {
			t.Fatalf("reply origin %#x, want %#x", got, req.Transmit)
		}
	})
}
