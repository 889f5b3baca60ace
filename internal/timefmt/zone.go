package timefmt

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrUnknownZone is wrapped by every LoadZone failure.
var ErrUnknownZone = errors.New("unknown time zone")

// maxOffsetHours bounds fixed offsets; real zones span −12:00 to +14:00,
// RFC 3339 allows up to ±23:59.
const maxOffsetHours = 23

// LoadZone resolves a zone name as an operator would type it:
//   - "UTC" (also "utc", "Z") and "Local" (under its real name, from TZ
//     or the /etc/localtime link, when one can be found);
//   - an IANA name such as "Asia/Tokyo" or "America/New_York";
//   - a fixed offset "+09:00", "-05:30", "+0930" or "+09".
//
// Anything else is an error wrapping ErrUnknownZone that says what is
// accepted.
func LoadZone(name string) (*time.Location, error) {
	n := strings.TrimSpace(name)
	switch {
	case n == "":
		return nil, fmt.Errorf("%w: empty name; %s", ErrUnknownZone, accepted)
	case strings.EqualFold(n, "UTC") || n == "Z":
		return time.UTC, nil
	case strings.EqualFold(n, "Local"):
		return localZone(), nil
	case n[0] == '+' || n[0] == '-':
		off, err := parseOffset(n)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v; %s", ErrUnknownZone, name, err, accepted)
		}
		return time.FixedZone(formatOffset(off), off), nil
	}
	loc, err := time.LoadLocation(n)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not in the IANA database; %s", ErrUnknownZone, name, accepted)
	}
	return loc, nil
}

const accepted = `use "UTC", "Local", an IANA name like "Asia/Tokyo", or a fixed offset like "+09:00"`

// parseOffset reads ±HH:MM, ±HHMM or ±HH into seconds east of UTC.
func parseOffset(s string) (int, error) {
	sign := 1
	if s[0] == '-' {
		sign = -1
	}
	body := s[1:]
	var hh, mm string
	switch {
	case len(body) == 5 && body[2] == ':':
		hh, mm = body[:2], body[3:]
	case len(body) == 4:
		hh, mm = body[:2], body[2:]
	case len(body) == 2:
		hh, mm = body, "00"
	default:
		return 0, errors.New("a fixed offset is ±HH:MM, ±HHMM or ±HH")
	}
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if err1 != nil || err2 != nil || !digits(hh) || !digits(mm) {
		return 0, errors.New("a fixed offset is ±HH:MM, ±HHMM or ±HH with digits")
	}
	if h > maxOffsetHours || m > 59 {
		return 0, fmt.Errorf("offset out of range (hours 00–%d, minutes 00–59)", maxOffsetHours)
	}
	return sign * (h*3600 + m*60), nil
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// formatOffset renders seconds east of UTC as ±HH:MM.
func formatOffset(sec int) string {
	sign := byte('+')
	if sec < 0 {
		sign, sec = '-', -sec
	}
	return fmt.Sprintf("%c%02d:%02d", sign, sec/3600, sec%3600/60)
}
