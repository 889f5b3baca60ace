package clock

import (
	"errors"
	"strings"
	"testing"
)

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Servers) < 3 {
		t.Fatalf("default servers %v: want at least 3", cfg.Servers)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := Config{
		Servers:         []string{"pool.ntp.org", "a:0", "b:123", "b:123"},
		Jitter:          0.9,
		MaxDriftPPM:     -1,
		StaleAfterPolls: 0,
		MaxBackoff:      -1,
	}
	err := cfg.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{
		`server "pool.ntp.org": want host:port`, `server "a:0"`, `server "b:123" listed twice`,
		"poll interval 0s", "jitter 0.9", "timeout 0s", "max drift -1 ppm", "stale after 0 polls",
		"max dispersion 0s", "jump threshold 0s", "max backoff -1ns", "clock: nil",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if err := (Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "at least one NTP server") {
		t.Fatalf("empty config: %v", err)
	}
	if _, err := NewSampler(Config{Servers: []string{"x"}}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewSampler with a bad config: %v", err)
	}
}
