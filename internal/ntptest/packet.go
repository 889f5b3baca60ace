// Package ntptest is a real NTP server (RFC 5905, NTPv3/v4 server mode) on
// UDP for tests and dev mode. Every field a client checks can be set, and
// changed while it runs: offset from the real clock, stratum, root delay and
// dispersion, precision, leap indicator, kiss-of-death codes, added latency,
// dropped replies, malformed replies and a "liar" that answers with random
// offsets far from the truth.
package ntptest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// PacketSize is the size of an NTP header without extension fields or MAC.
const PacketSize = 48

// Modes (RFC 5905 figure 10).
const (
	ModeClient = 3
	ModeServer = 4
)

// Leap indicators (RFC 5905 figure 9).
const (
	LeapNone      = 0
	LeapAdd       = 1
	LeapDel       = 2
	LeapNotInSync = 3
)

// Errors returned by ParseRequest.
var (
	ErrShortPacket = errors.New("ntp request shorter than 48 bytes")
	ErrBadVersion  = errors.New("ntp request version not 1-4")
	ErrBadMode     = errors.New("ntp request mode is not client (3)")
)

// ntpEpochOffset is the number of seconds from 1900-01-01 (NTP era 0) to
// 1970-01-01 (Unix epoch).
const ntpEpochOffset = 2_208_988_800

// Request is the part of a client request a server needs to answer it.
type Request struct {
	Leap    uint8
	Version uint8
	Mode    uint8
	Poll    int8
	// Transmit is the client's transmit timestamp, raw: the server must
	// echo it unchanged in the reply's Origin field (clients send random
	// bits here, not a time).
	Transmit uint64
}

// ParseRequest decodes a client request defensively: it accepts any
// datagram of at least 48 bytes (trailing extension fields or a MAC are
// ignored) whose version is 1-4 and whose mode is client.
func ParseRequest(b []byte) (Request, error) {
	if len(b) < PacketSize {
		return Request{}, fmt.Errorf("%w: got %d", ErrShortPacket, len(b))
	}
	r := Request{
		Leap:     b[0] >> 6,
		Version:  (b[0] >> 3) & 0x7,
		Mode:     b[0] & 0x7,
		Poll:     int8(b[2]),
		Transmit: binary.BigEndian.Uint64(b[40:48]),
	}
	if r.Version < 1 || r.Version > 4 {
		return Request{}, fmt.Errorf("%w: got %d", ErrBadVersion, r.Version)
	}
	if r.Mode != ModeClient {
		return Request{}, fmt.Errorf("%w: got %d", ErrBadMode, r.Mode)
	}
	return r, nil
}

// Response is a server reply, in host units; Marshal encodes it.
type Response struct {
	Leap           uint8
	Version        uint8
	Stratum        uint8
	Poll           int8
	Precision      int8
	RootDelay      time.Duration
	RootDispersion time.Duration
	// RefID: for stratum 0 (kiss-of-death) the ASCII kiss code, for stratum
	// 1 the reference clock name; up to 4 bytes.
	RefID     [4]byte
	Reference time.Time
	// Origin is the request's Transmit, raw.
	Origin   uint64
	Receive  time.Time
	Transmit time.Time
}

// Marshal encodes the response as a 48-byte NTP packet in server mode.
func (r Response) Marshal() []byte {
	b := make([]byte, PacketSize)
	b[0] = (r.Leap&0x3)<<6 | (r.Version&0x7)<<3 | ModeServer
	b[1] = r.Stratum
	b[2] = byte(r.Poll)
	b[3] = byte(r.Precision)
	binary.BigEndian.PutUint32(b[4:8], shortFormat(r.RootDelay))
	binary.BigEndian.PutUint32(b[8:12], shortFormat(r.RootDispersion))
	copy(b[12:16], r.RefID[:])
	binary.BigEndian.PutUint64(b[16:24], Timestamp(r.Reference))
	binary.BigEndian.PutUint64(b[24:32], r.Origin)
	binary.BigEndian.PutUint64(b[32:40], Timestamp(r.Receive))
	binary.BigEndian.PutUint64(b[40:48], Timestamp(r.Transmit))
	return b
}

// Timestamp converts t to the 64-bit NTP timestamp format (seconds since
// 1900 in the upper 32 bits, fraction in the lower 32), rounding to the
// nearest fraction. Times outside era 0/1 wrap as NTP does. The zero time
// encodes as 0 (NTP's "unknown").
func Timestamp(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	sec := uint64(t.Unix() + ntpEpochOffset)
	// Rounded to nearest; at most 0xfffffffc for 999,999,999 ns, so no carry.
	frac := (uint64(t.Nanosecond())<<32 + 500_000_000) / 1_000_000_000
	return sec<<32 | frac
}

// shortFormat converts a non-negative duration to NTP's 32-bit short format
// (16.16 seconds), saturating.
func shortFormat(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	v := (uint64(d)<<16 + 500_000_000) / 1_000_000_000
	if v > 0xffffffff {
		return 0xffffffff
	}
	return uint32(v)
}

// refID turns a code like "RATE" or "LOCL" into a reference id.
func refID(s string) [4]byte {
	var id [4]byte
	copy(id[:], s)
	return id
}
