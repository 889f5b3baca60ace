package ntptest

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

func request(liVnMode byte, transmit uint64, size int) []byte {
	b := make([]byte, size)
	if size > 0 {
		b[0] = liVnMode
	}
	if size >= PacketSize {
		binary.BigEndian.PutUint64(b[40:48], transmit)
	}
	return b
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		wantErr error
		want    Request
	}{
		{"v4 client", request(4<<3|3, 0xdeadbeefcafef00d, 48), nil, Request{Version: 4, Mode: 3, Transmit: 0xdeadbeefcafef00d}},
		{"v3 client with leap bits", request(3<<6|3<<3|3, 1, 48), nil, Request{Leap: 3, Version: 3, Mode: 3, Transmit: 1}},
		{"trailing MAC ignored", request(4<<3|3, 7, 68), nil, Request{Version: 4, Mode: 3, Transmit: 7}},
		{"empty", nil, ErrShortPacket, Request{}},
		{"47 bytes", request(4<<3|3, 0, 47), ErrShortPacket, Request{}},
		{"version 0", request(0<<3|3, 0, 48), ErrBadVersion, Request{}},
		{"version 5", request(5<<3|3, 0, 48), ErrBadVersion, Request{}},
		{"server mode", request(4<<3|4, 0, 48), ErrBadMode, Request{}},
		{"control mode", request(4<<3|6, 0, 48), ErrBadMode, Request{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRequest(tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ParseRequest error = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("ParseRequest = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestTimestamp(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
		want uint64
	}{
		{"zero time is unknown", time.Time{}, 0},
		{"unix epoch", time.Unix(0, 0), uint64(ntpEpochOffset) << 32},
		{"half second", time.Unix(1, 500_000_000), uint64(ntpEpochOffset+1)<<32 | 1<<31},
		{"one nanosecond rounds to 4 units of 2^-32 s", time.Unix(1, 1), uint64(ntpEpochOffset+1)<<32 | 4},
		{"last nanosecond of a second", time.Unix(1, 999_999_999), uint64(ntpEpochOffset+1)<<32 | 0xfffffffc},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Timestamp(tc.in); got != tc.want {
				t.Fatalf("Timestamp(%v) = %#x, want %#x", tc.in, got, tc.want)
			}
		})
	}
}

func TestShortFormat(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want uint32
	}{
		{-time.Second, 0},
		{0, 0},
		{time.Second, 1 << 16},
		{1500 * time.Millisecond, 1<<16 | 1<<15},
		{100000 * time.Second, 0xffffffff},
	}
	for _, tc := range tests {
		if got := shortFormat(tc.in); got != tc.want {
			t.Errorf("shortFormat(%v) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

func TestResponseMarshal(t *testing.T) {
	recv := time.Unix(1_700_000_000, 250_000_000)
	r := Response{
		Leap: LeapAdd, Version: 4, Stratum: 2, Poll: 6, Precision: -20,
		RootDelay: time.Second, RootDispersion: time.Second / 2,
		RefID: refID("GPS"), Reference: recv.Add(-time.Second),
		Origin: 0x0102030405060708, Receive: recv, Transmit: recv.Add(time.Millisecond),
	}
	b := r.Marshal()
	if len(b) != PacketSize {
		t.Fatalf("len = %d, want %d", len(b), PacketSize)
	}
	if b[0] != LeapAdd<<6|4<<3|ModeServer || b[1] != 2 || int8(b[2]) != 6 || int8(b[3]) != -20 {
		t.Fatalf("header bytes = % x", b[:4])
	}
	if got := binary.BigEndian.Uint32(b[4:8]); got != 1<<16 {
		t.Errorf("root delay = %#x", got)
	}
	if got := binary.BigEndian.Uint32(b[8:12]); got != 1<<15 {
		t.Errorf("root dispersion = %#x", got)
	}
	if string(b[12:15]) != "GPS" || b[15] != 0 {
		t.Errorf("refid = %q", b[12:16])
	}
	if got := binary.BigEndian.Uint64(b[24:32]); got != r.Origin {
		t.Errorf("origin = %#x, want %#x", got, r.Origin)
	}
	if got := binary.BigEndian.Uint64(b[32:40]); got != Timestamp(recv) {
		t.Errorf("receive = %#x", got)
	}
	if got := binary.BigEndian.Uint64(b[40:48]); got != Timestamp(recv.Add(time.Millisecond)) {
		t.Errorf("transmit = %#x", got)
	}
}
