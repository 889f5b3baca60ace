package fsm

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// max_hold_ns: 0 is the default (a config stored before the field
// existed); otherwise 1s..24h.
func TestMaxHoldValidated(t *testing.T) {
	for _, tc := range []struct {
		ns   int64
		ok   bool
		want time.Duration
	}{
		{0, true, time.Hour},
		{int64(30 * time.Minute), true, 30 * time.Minute},
		{int64(24 * time.Hour), true, 24 * time.Hour},
		{-1, false, 0},
		{int64(500 * time.Millisecond), false, 0},
		{int64(25 * time.Hour), false, 0},
	} {
		c := DefaultRuntimeConfig()
		c.MaxHoldNs = tc.ns
		err := ValidateRuntimeConfig(c)
		if tc.ok {
			if err != nil {
				t.Errorf("max_hold_ns %d: %v", tc.ns, err)
			} else if got := MaxHold(c); got != tc.want {
				t.Errorf("MaxHold of max_hold_ns %d = %s, want %s", tc.ns, got, tc.want)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "max_hold_ns") {
			t.Errorf("max_hold_ns %d: err = %v, want one naming max_hold_ns", tc.ns, err)
		}
	}
	if got := time.Duration(DefaultRuntimeConfig().GetMaxHoldNs()); got != time.Hour {
		t.Errorf("default max hold %s, want 1h", got)
	}
}
