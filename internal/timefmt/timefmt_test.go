package timefmt

import (
	"testing"
	"time"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadZone(name)
	if err != nil {
		t.Fatalf("LoadZone(%q): %v", name, err)
	}
	return loc
}

func TestUTC(t *testing.T) {
	tokyo := mustZone(t, "Asia/Tokyo")
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"nanoseconds", time.Date(2026, 11, 24, 10, 0, 0, 123456789, time.UTC), "2026-11-24T10:00:00.123456789Z"},
		{"whole second keeps nine digits", time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), "2026-11-24T10:00:00.000000000Z"},
		{"other zone converted to UTC", time.Date(2026, 11, 24, 19, 0, 0, 1, tokyo), "2026-11-24T10:00:00.000000001Z"},
		{"before epoch", time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), "1969-12-31T23:59:59.999999999Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UTC(tt.in); got != tt.want {
				t.Errorf("UTC() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEpochMillis(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
		want int64
	}{
		{"epoch", time.Unix(0, 0), 0},
		{"truncates sub-ms", time.Date(2026, 11, 24, 10, 0, 0, 123999999, time.UTC), 1795514400123},
		{"before epoch floors", time.Unix(0, -1), -1},
		{"zone does not matter", time.Date(2026, 11, 24, 19, 0, 0, 123000000, time.FixedZone("+09:00", 9*3600)), 1795514400123},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EpochMillis(tt.in); got != tt.want {
				t.Errorf("EpochMillis() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestInZone(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 123456789, time.UTC)
	summer := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		t    time.Time
		zone string
		want string
	}{
		{"tokyo", at, "Asia/Tokyo", "2026-11-24T19:00:00.123456789+09:00 (Asia/Tokyo)"},
		{"half-hour zone", at, "Asia/Kolkata", "2026-11-24T15:30:00.123456789+05:30 (Asia/Kolkata)"},
		{"new york winter", at, "America/New_York", "2026-11-24T05:00:00.123456789-05:00 (America/New_York)"},
		{"new york summer", summer, "America/New_York", "2026-07-01T08:00:00.000000000-04:00 (America/New_York)"},
		{"london winter prints +00:00 not Z", at, "Europe/London", "2026-11-24T10:00:00.123456789+00:00 (Europe/London)"},
		{"utc", at, "UTC", "2026-11-24T10:00:00.123456789+00:00 (UTC)"},
		{"fixed offset not repeated", at, "+09:00", "2026-11-24T19:00:00.123456789+09:00"},
		{"negative fixed offset", at, "-03:30", "2026-11-24T06:30:00.123456789-03:30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := InZone(tt.t, mustZone(t, tt.zone)); got != tt.want {
				t.Errorf("InZone(%s) = %q, want %q", tt.zone, got, tt.want)
			}
		})
	}
	if got, want := InZone(at, nil), "2026-11-24T10:00:00.123456789+00:00 (UTC)"; got != want {
		t.Errorf("InZone(nil) = %q, want %q", got, want)
	}
}

func TestNewStamp(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 123456789, time.UTC)
	got := NewStamp(at, mustZone(t, "Asia/Tokyo"))
	want := Stamp{
		UTC:     "2026-11-24T10:00:00.123456789Z",
		EpochMS: 1795514400123,
		Zone:    "2026-11-24T19:00:00.123456789+09:00 (Asia/Tokyo)",
	}
	if got != want {
		t.Errorf("NewStamp() = %+v, want %+v", got, want)
	}
}
