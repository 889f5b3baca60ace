package timefmt

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadInstant is wrapped by every Parse failure.
var ErrBadInstant = errors.New("cannot read instant")

// localLayouts are wall-clock forms without an offset, read in the zone the
// caller names.
var localLayouts = []string{
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
}

// Parse reads an instant an operator typed:
//   - RFC 3339 with an offset ("2026-11-24T19:00:00.5+09:00", "…Z");
//   - epoch milliseconds ("1795428000123");
//   - a wall-clock time without offset ("2026-11-24 19:00:00.5"), read in
//     loc (nil means UTC). In a DST gap or overlap Go's time.Date rules
//     apply; pass an explicit offset to be unambiguous.
func Parse(s string, loc *time.Location) (time.Time, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return time.Time{}, fmt.Errorf("%w: empty; %s", ErrBadInstant, instantForms)
	}
	if isEpoch(in) {
		ms, err := strconv.ParseInt(in, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: %q: epoch milliseconds out of range", ErrBadInstant, s)
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, in); err == nil {
		return t, nil
	}
	if loc == nil {
		loc = time.UTC
	}
	for _, layout := range localLayouts {
		if t, err := time.ParseInLocation(layout, in, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: %q; %s", ErrBadInstant, s, instantForms)
}

const instantForms = `use RFC 3339 like "2026-11-24T19:00:00.123+09:00", epoch milliseconds, or "2026-11-24 19:00:00" in the chosen zone`

func isEpoch(s string) bool {
	body := strings.TrimPrefix(s, "-")
	return body != "" && digits(body)
}
