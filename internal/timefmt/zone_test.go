package timefmt

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLoadZone(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in         string
		wantName   string
		wantOffset int // seconds east of UTC at `at`
	}{
		{"UTC", "UTC", 0},
		{"utc", "UTC", 0},
		{"Z", "UTC", 0},
		{" Asia/Tokyo ", "Asia/Tokyo", 9 * 3600},
		{"America/St_Johns", "America/St_Johns", -(3*3600 + 30*60)},
		{"Australia/Lord_Howe", "Australia/Lord_Howe", 11 * 3600},
		{"+09:00", "+09:00", 9 * 3600},
		{"-05:30", "-05:30", -(5*3600 + 30*60)},
		{"+0930", "+09:30", 9*3600 + 30*60},
		{"+09", "+09:00", 9 * 3600},
		{"-00:00", "+00:00", 0},
		{"+23:59", "+23:59", 23*3600 + 59*60},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			loc, err := LoadZone(tt.in)
			if err != nil {
				t.Fatalf("LoadZone(%q): %v", tt.in, err)
			}
			if loc.String() != tt.wantName {
				t.Errorf("name = %q, want %q", loc.String(), tt.wantName)
			}
			if _, off := at.In(loc).Zone(); off != tt.wantOffset {
				t.Errorf("offset = %ds, want %ds", off, tt.wantOffset)
			}
		})
	}
	loc, err := LoadZone("Local")
	if _, off := at.In(time.Local).Zone(); err != nil || func() bool { _, o := at.In(loc).Zone(); return o != off }() {
		t.Errorf("LoadZone(Local) = %v, %v; want the offset of time.Local", loc, err)
	}
}

func TestLoadZoneErrors(t *testing.T) {
	tests := []struct {
		in       string
		wantPart string
	}{
		{"", "empty name"},
		{"Asia/Tokio", `"Asia/Tokio" is not in the IANA database`},
		{"Mars/Olympus", "not in the IANA database"},
		{"../etc/passwd", "not in the IANA database"},
		{"+9:00", "±HH:MM, ±HHMM or ±HH"},
		{"+09:0x", "with digits"},
		{"+24:00", "out of range"},
		{"-12:60", "out of range"},
		{"+", "±HH:MM"},
		{"+09:00:00", "±HH:MM"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			loc, err := LoadZone(tt.in)
			if err == nil {
				t.Fatalf("LoadZone(%q) = %v, want error", tt.in, loc)
			}
			if !errors.Is(err, ErrUnknownZone) {
				t.Errorf("error %v does not wrap ErrUnknownZone", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantPart) {
				t.Errorf("error %q does not contain %q", msg, tt.wantPart)
			}
			if !strings.Contains(msg, `"+09:00"`) || !strings.Contains(msg, "Asia/Tokyo") {
				t.Errorf("error %q does not say what is accepted", msg)
			}
		})
	}
}

// "Local" prints as the zone it is, never as "(Local)".
func TestLocalZoneHasItsRealName(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	got := InZone(at, mustZone(t, "Local"))
	if strings.Contains(got, "(Local)") {
		t.Errorf("InZone(Local) = %q: names the zone Local", got)
	}
	_, off := at.In(time.Local).Zone()
	if want := formatOffset(off); !strings.Contains(got, want) {
		t.Errorf("InZone(Local) = %q lacks the offset %s", got, want)
	}

	tests := []struct {
		name  string
		local *time.Location // as the runtime named it
		tz    string
		tzSet bool
		link  string // /etc/localtime's target
		want  string
	}{
		{"localtime symlink", time.FixedZone("Local", 9*3600), "", false, "/usr/share/zoneinfo/Asia/Tokyo", "Asia/Tokyo"},
		{"relative symlink", time.FixedZone("Local", 3600), "", false, "../usr/share/zoneinfo/Europe/Berlin", "Europe/Berlin"},
		{"TZ=/etc/localtime", time.FixedZone("Local", 3600), "/etc/localtime", true, "/usr/share/zoneinfo/Europe/Berlin", "Europe/Berlin"},
		{"TZ is a zoneinfo path", time.FixedZone("/usr/share/zoneinfo/America/New_York", -5*3600), "/usr/share/zoneinfo/America/New_York", true, "", "America/New_York"},
		{"TZ names a zone", mustZone(t, "Asia/Kolkata"), "Asia/Kolkata", true, "/usr/share/zoneinfo/Etc/UTC", "Asia/Kolkata"},
		{"copied file, no name", time.FixedZone("Local", 0), "", false, "", "Local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resolveLocal(tt.local, tt.tz, tt.tzSet, tt.link).String(); got != tt.want {
				t.Errorf("resolveLocal = %q, want %q", got, tt.want)
			}
		})
	}
}
