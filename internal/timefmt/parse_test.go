package timefmt

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tokyo := mustZone(t, "Asia/Tokyo")
	want := time.Date(2026, 11, 24, 10, 0, 0, 123000000, time.UTC)
	tests := []struct {
		name string
		in   string
		loc  *time.Location
		want time.Time
	}{
		{"rfc3339 utc", "2026-11-24T10:00:00.123Z", nil, want},
		{"rfc3339 offset ignores loc", "2026-11-24T19:00:00.123+09:00", time.UTC, want},
		{"rfc3339 nanoseconds", "2026-11-24T10:00:00.123000000Z", tokyo, want},
		{"epoch ms", "1795514400123", tokyo, want},
		{"negative epoch ms", "-1", nil, time.Unix(0, -int64(time.Millisecond))},
		{"wall clock in zone", "2026-11-24 19:00:00.123", tokyo, want},
		{"wall clock T in zone", "2026-11-24T19:00:00.123", tokyo, want},
		{"wall clock minutes", "2026-11-24 19:00", tokyo, want.Add(-123 * time.Millisecond)},
		{"wall clock nil loc is UTC", " 2026-11-24 10:00:00.123 ", nil, want},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in, tt.loc)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("Parse(%q) = %s, want %s", tt.in, UTC(got), UTC(tt.want))
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "yesterday", "2026-13-01T00:00:00Z", "99999999999999999999", "2026-11-24T10:00:00+25:00", "-"} {
		t.Run(in, func(t *testing.T) {
			got, err := Parse(in, nil)
			if err == nil {
				t.Fatalf("Parse(%q) = %s, want error", in, UTC(got))
			}
			if !errors.Is(err, ErrBadInstant) {
				t.Errorf("error %v does not wrap ErrBadInstant", err)
			}
			if !strings.Contains(err.Error(), "RFC 3339") && !strings.Contains(err.Error(), "out of range") {
				t.Errorf("error %q does not say what is accepted", err)
			}
		})
	}
}
