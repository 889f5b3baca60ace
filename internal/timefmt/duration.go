package timefmt

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// durationUnit is one rung of the ladder Duration climbs: values below
// limit (after rounding to res) print in unit with res resolution.
type durationUnit struct {
	limit, unit, res time.Duration
	suffix           string
}

var ladder = []durationUnit{
	{limit: time.Microsecond, unit: time.Nanosecond, res: time.Nanosecond, suffix: "ns"},
	{limit: 100 * time.Microsecond, unit: time.Microsecond, res: time.Nanosecond, suffix: "µs"},
	{limit: time.Second, unit: time.Millisecond, res: time.Microsecond, suffix: "ms"},
	{limit: time.Minute, unit: time.Second, res: time.Millisecond, suffix: "s"},
}

// Duration renders d for a table: nanoseconds below 1µs ("850ns"),
// microseconds below 100µs ("12.345µs"), milliseconds to the microsecond
// below 1s ("0.52ms", "1.234ms"), seconds to the millisecond below a minute
// ("12.5s"), and Go's h/m/s form to the millisecond above ("1m30.25s").
// Trailing zeros are dropped; rounding is half away from zero.
func Duration(d time.Duration) string {
	neg := d < 0
	abs := absDuration(d)
	var s string
	for _, u := range ladder {
		r := roundUnsigned(abs, u.res)
		if r < uint64(u.limit) {
			s = fixed(r, uint64(u.unit), uint64(u.res)) + u.suffix
			break
		}
	}
	if s == "" {
		r := roundUnsigned(abs, time.Millisecond)
		if r > math.MaxInt64 || r < abs {
			r = abs - abs%uint64(time.Millisecond) // no rounding up past the largest Duration
		}
		s = time.Duration(r).String()
	}
	if neg && s != "0ns" {
		return "-" + s
	}
	return s
}

// Precise renders d in the same units as Duration but to the nanosecond,
// never rounded ("0.999999ms" where Duration says "1ms"): for error
// messages that compare a figure with a limit.
func Precise(d time.Duration) string {
	neg := d < 0
	abs := absDuration(d)
	var s string
	for _, u := range ladder {
		if abs < uint64(u.limit) {
			s = fixed(abs, uint64(u.unit), 1) + u.suffix
			break
		}
	}
	if s == "" {
		s = durationFromAbs(abs).String()
	}
	if neg && s != "0ns" {
		return "-" + s
	}
	return s
}

// Signed renders an offset with its sign: "+0.3ms", "-12µs", "0ns".
func Signed(d time.Duration) string {
	if d > 0 {
		return "+" + Duration(d)
	}
	return Duration(d)
}

// PlusMinus renders a non-negative uncertainty as "±0.52ms"; the sign of d
// is ignored.
func PlusMinus(d time.Duration) string {
	return "±" + Duration(durationFromAbs(absDuration(d)))
}

// durationFromAbs maps |d| back to a Duration, saturating at the largest.
func durationFromAbs(a uint64) time.Duration {
	if a > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(a)
}

// absDuration is |d| without overflow at math.MinInt64.
func absDuration(d time.Duration) uint64 {
	if d < 0 {
		return uint64(-(d + 1)) + 1
	}
	return uint64(d)
}

// roundUnsigned rounds a to a multiple of res, half up.
func roundUnsigned(a uint64, res time.Duration) uint64 {
	r := uint64(res)
	q, rem := a/r, a%r
	if rem*2 >= r {
		q++
	}
	return q * r
}

// fixed prints v/unit with as many decimals as unit/res allows, trailing
// zeros dropped.
func fixed(v, unit, res uint64) string {
	whole := strconv.FormatUint(v/unit, 10)
	if unit == res {
		return whole
	}
	places := len(strconv.FormatUint(unit/res, 10)) - 1
	frac := strconv.FormatUint((v%unit)/res, 10)
	frac = strings.Repeat("0", places-len(frac)) + frac
	frac = strings.TrimRight(frac, "0")
	if frac == "" {
		return whole
	}
	return whole + "." + frac
}
