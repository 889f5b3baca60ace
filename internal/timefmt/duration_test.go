package timefmt

import (
	"math"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0ns"},
		{1, "1ns"},
		{999, "999ns"},
		{time.Microsecond, "1µs"},
		{12345, "12.345µs"},
		{99999, "99.999µs"},
		{100 * time.Microsecond, "0.1ms"},
		{520 * time.Microsecond, "0.52ms"},
		{1234 * time.Microsecond, "1.234ms"},
		{1234567, "1.235ms"},     // half away from zero
		{1234499, "1.234ms"},     // below half
		{-1234567, "-1.235ms"},   // symmetric for negatives
		{999999499, "999.999ms"}, // stays in ms
		{999999500, "1s"},        // rounds up into the next unit
		{12500 * time.Millisecond, "12.5s"},
		{59999 * time.Millisecond, "59.999s"},
		{59999500 * time.Microsecond, "1m0s"},
		{90250 * time.Millisecond, "1m30.25s"},
		{2*time.Hour + 3*time.Minute + 4*time.Second + 567891011, "2h3m4.568s"},
		{-400, "-400ns"},
		{math.MaxInt64, "2562047h47m16.854s"},
		{math.MinInt64, "-2562047h47m16.854s"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := Duration(tt.in); got != tt.want {
				t.Errorf("Duration(%d) = %q, want %q", int64(tt.in), got, tt.want)
			}
		})
	}
}

func TestPlusMinus(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{520 * time.Microsecond, "±0.52ms"},
		{-520 * time.Microsecond, "±0.52ms"},
		{0, "±0ns"},
		{math.MinInt64, "±2562047h47m16.854s"},
	}
	for _, tt := range tests {
		if got := PlusMinus(tt.in); got != tt.want {
			t.Errorf("PlusMinus(%d) = %q, want %q", int64(tt.in), got, tt.want)
		}
	}
}

func TestPrecise(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0ns"},
		{999, "999ns"},
		{12345, "12.345µs"},
		{999999, "0.999999ms"},
		{-1400 * time.Microsecond, "-1.4ms"},
		{1234567, "1.234567ms"},
		{999999999, "999.999999ms"},
		{12500 * time.Millisecond, "12.5s"},
		{59999999999, "59.999999999s"},
		{90250 * time.Millisecond, "1m30.25s"},
		{math.MinInt64, "-2562047h47m16.854775807s"},
	}
	for _, tt := range tests {
		if got := Precise(tt.in); got != tt.want {
			t.Errorf("Precise(%d) = %q, want %q", int64(tt.in), got, tt.want)
		}
	}
}

func TestSigned(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{300 * time.Microsecond, "+0.3ms"},
		{-12 * time.Microsecond, "-12µs"},
		{0, "0ns"},
		{-500623 * time.Microsecond, "-500.623ms"},
	} {
		if got := Signed(tc.d); got != tc.want {
			t.Errorf("Signed(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
