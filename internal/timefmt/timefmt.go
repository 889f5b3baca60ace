// Package timefmt renders instants and durations the way Stillpoint reports
// them to people and programs: UTC RFC 3339 with nanoseconds, epoch
// milliseconds, any IANA time zone with its numeric offset, and short
// durations with units that suit a table (1.234ms, ±0.52ms).
//
// The IANA database is embedded (time/tzdata), so zone names resolve in a
// FROM-scratch container with no /usr/share/zoneinfo.
package timefmt

import (
	"time"
	_ "time/tzdata" // embedded zone database for FROM-scratch images
)

// utcLayout is RFC 3339 with exactly nine fractional digits, so columns of
// instants line up and the precision is visible.
const utcLayout = "2006-01-02T15:04:05.000000000Z07:00"

// zoneLayout always prints a numeric offset ("+00:00", never "Z"), so a
// reader in any zone sees what was added to UTC.
const zoneLayout = "2006-01-02T15:04:05.000000000-07:00"

// UTC formats t as UTC RFC 3339 with nanoseconds:
// 2026-11-24T10:00:00.123456789Z.
func UTC(t time.Time) string {
	return t.UTC().Format(utcLayout)
}

// EpochMillis is t in whole milliseconds since the Unix epoch, rounded
// toward negative infinity (so an instant never reports a millisecond that
// has not started yet).
func EpochMillis(t time.Time) int64 {
	return t.UnixMilli()
}

// InZone formats t in loc with its numeric offset and, when it adds
// anything, the zone's name:
// 2026-11-24T19:00:00.123456789+09:00 (Asia/Tokyo). A nil loc means UTC.
func InZone(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	s := t.In(loc).Format(zoneLayout)
	name := zoneName(t, loc)
	if name == "" || name == "Local" || name == s[len(s)-len("+00:00"):] {
		return s
	}
	return s + " (" + name + ")"
}

// Stamp is one instant in every form Stillpoint reports it in.
type Stamp struct {
	// UTC is RFC 3339 with nanoseconds in UTC.
	UTC string
	// EpochMS is milliseconds since the Unix epoch.
	EpochMS int64
	// Zone is the instant in the requested zone with its offset; equal to
	// the UTC form rendered with "+00:00" when no zone was requested.
	Zone string
}

// NewStamp renders t in all forms; loc nil means UTC.
func NewStamp(t time.Time, loc *time.Location) Stamp {
	return Stamp{UTC: UTC(t), EpochMS: EpochMillis(t), Zone: InZone(t, loc)}
}
