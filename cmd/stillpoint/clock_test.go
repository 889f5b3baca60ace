package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/ntptest"
)

func startTestNTP(t *testing.T, f func(*ntptest.Settings)) string {
	t.Helper()
	cfg := ntptest.DefaultConfig()
	if f != nil {
		f(&cfg.Settings)
	}
	s, err := ntptest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s.Addr()
}

// runCLI runs the command with stdout and stderr in one buffer.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := execCLI(t, &out, &out, 30*time.Second, args...)
	return out.String(), err
}

func TestClockProbe(t *testing.T) {
	at40 := func(s *ntptest.Settings) { s.Offset = 40 * time.Millisecond }
	a, b := startTestNTP(t, at40), startTestNTP(t, at40)
	liar := startTestNTP(t, func(s *ntptest.Settings) { s.Offset = 40 * time.Millisecond; s.Liar = true })
	down := startTestNTP(t, func(s *ntptest.Settings) { s.Drop = true })
	kod := startTestNTP(t, func(s *ntptest.Settings) { s.KissCode = "DENY" })

	t.Run("json synchronized", func(t *testing.T) {
		out, err := runCLI(t, "clock", "probe", "--server", a, "--server", liar, "--server", b, "-o", "json")
		if err != nil {
			t.Fatalf("probe: %v\n%s", err, out)
		}
		var r struct {
			Status       string   `json:"status"`
			Reason       *string  `json:"reason"`
			OffsetMs     *float64 `json:"offset_ms"`
			ErrorBoundMs *float64 `json:"error_bound_ms"`
			Sources      []struct {
				Address      string   `json:"address"`
				OffsetMs     *float64 `json:"offset_ms"`
				RTTMs        *float64 `json:"rtt_ms"`
				Stratum      *int     `json:"stratum"`
				ErrorBoundMs *float64 `json:"error_bound_ms"`
				Verdict      string   `json:"verdict"`
				Reason       *string  `json:"reason"`
			} `json:"sources"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if r.Status != "synchronized" || r.Reason == nil || r.OffsetMs == nil || r.ErrorBoundMs == nil {
			t.Fatalf("estimate fields missing or wrong:\n%s", out)
		}
		if lo, hi := *r.OffsetMs-*r.ErrorBoundMs, *r.OffsetMs+*r.ErrorBoundMs; lo > 40 || hi < 40 {
			t.Fatalf("interval [%v, %v] ms does not hold 40 ms", lo, hi)
		}
		if len(r.Sources) != 3 {
			t.Fatalf("%d sources", len(r.Sources))
		}
		for i, want := range []struct{ addr, verdict string }{{a, "selected"}, {liar, "falseticker"}, {b, "selected"}} {
			s := r.Sources[i]
			if s.Address != want.addr || s.Verdict != want.verdict || s.OffsetMs == nil || s.RTTMs == nil || s.Stratum == nil || s.ErrorBoundMs == nil || s.Reason == nil {
				t.Fatalf("source %d = %+v, want %s %s with every field", i, s, want.addr, want.verdict)
			}
		}
	})

	// Per source: the figures the bound is made of; an unreachable server
	// has no offset at all (absent, not 0).
	t.Run("json figures per source, none for an unreachable one", func(t *testing.T) {
		out, _ := runCLI(t, "clock", "probe", "--server", a, "--server", down, "--server", kod, "--timeout", "300ms", "-o", "json")
		var r struct {
			Sources []map[string]any `json:"sources"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Sources) != 3 {
			t.Fatalf("not JSON with 3 sources: %v\n%s", err, out)
		}
		for _, i := range []int{0, 2} { // an answering server and a kiss-of-death (it answered)
			for _, k := range []string{"offset_ms", "rtt_ms", "root_delay_ms", "root_dispersion_ms", "precision_ms", "error_bound_ms", "stratum"} {
				if _, ok := r.Sources[i][k]; !ok {
					t.Errorf("answering source %d lacks %q: %v", i, k, r.Sources[i])
				}
			}
		}
		for _, k := range []string{"offset_ms", "rtt_ms", "error_bound_ms", "stratum", "root_delay_ms"} {
			if v, ok := r.Sources[1][k]; ok {
				t.Errorf("unreachable source has %q = %v, want it absent", k, v)
			}
		}
		if r.Sources[1]["verdict"] != "unreachable" {
			t.Errorf("unreachable source: %v", r.Sources[1])
		}
		var est map[string]any
		_ = json.Unmarshal([]byte(out), &est)
		for _, k := range []string{"offset_ms", "error_bound_ms"} {
			if v, ok := est[k]; ok {
				t.Errorf("unsynchronized estimate (one of three servers answered) has %q = %v, want it absent", k, v)
			}
		}
	})

	t.Run("text unsynchronized exits 3", func(t *testing.T) {
		out, err := runCLI(t, "clock", "probe", "--server", a, "--server", down, "--server", kod, "--timeout", "300ms")
		var ee exitError
		if !errors.As(err, &ee) || ee.code != exitNotSynchronized {
			t.Fatalf("err = %v, want exit status %d\n%s", err, exitNotSynchronized, out)
		}
		for _, want := range []string{"Status        : unsynchronized", "no majority", down, "unreachable", kod, "kiss-of-death DENY", "ADDRESS"} {
			if !strings.Contains(out, want) {
				t.Errorf("output does not contain %q:\n%s", want, out)
			}
		}
	})

	t.Run("local skew is corrected", func(t *testing.T) {
		out, err := runCLI(t, "clock", "probe", "--server", a, "--server", b, "--server", liar, "--local-skew", "40ms", "-o", "json")
		if err != nil {
			t.Fatalf("probe: %v\n%s", err, out)
		}
		var r struct {
			OffsetMs, ErrorBoundMs float64
		}
		if err := json.Unmarshal([]byte(strings.ReplaceAll(strings.ReplaceAll(out, "offset_ms", "OffsetMs"), "error_bound_ms", "ErrorBoundMs")), &r); err != nil {
			t.Fatal(err)
		}
		if r.OffsetMs-r.ErrorBoundMs > 0 || r.OffsetMs+r.ErrorBoundMs < 0 {
			t.Fatalf("servers +40ms and a local clock +40ms: offset %v ± %v ms, want to hold 0", r.OffsetMs, r.ErrorBoundMs)
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		if _, err := runCLI(t, "clock", "probe", "--server", a, "-o", "yaml"); err == nil || !strings.Contains(err.Error(), "want text or json") {
			t.Fatalf("-o yaml: %v", err)
		}
		if _, err := runCLI(t, "clock", "probe", "--server", "no-port"); err == nil || !strings.Contains(err.Error(), "host:port") {
			t.Fatalf("server without port: %v", err)
		}
	})

	t.Run("help explains exit status", func(t *testing.T) {
		out, err := runCLI(t, "clock", "probe", "--help")
		if err != nil || !strings.Contains(out, "Exit status") || !strings.Contains(out, "stillpoint clock probe --server") {
			t.Fatalf("help: %v\n%s", err, out)
		}
	})
}

func TestNTPTestCommandServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out clockTestBuffer
	done := make(chan error, 1)
	go func() {
		done <- runNTPTest(ctx, &out, ntptestFlags{listen: "127.0.0.1:0", offset: 40 * time.Millisecond, stratum: 1, precision: -20, badPacket: "none"})
	}()
	deadline := time.Now().Add(10 * time.Second)
	var addr string
	for addr == "" {
		if time.Now().After(deadline) {
			t.Fatalf("ntptest did not report its address: %q", out.String())
		}
		if s := out.String(); strings.Contains(s, "serving NTP on ") {
			addr = strings.Fields(strings.SplitN(s, "serving NTP on ", 2)[1])[0]
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
	probe, err := runCLI(t, "clock", "probe", "--server", addr, "-o", "json")
	if err != nil {
		t.Fatalf("probe of %s: %v\n%s", addr, err, probe)
	}
	if !strings.Contains(probe, `"status": "synchronized"`) {
		t.Fatalf("probe:\n%s", probe)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "1 requests, 1 replies") {
		t.Fatalf("ntptest summary: %q", out.String())
	}
	if err := runNTPTest(context.Background(), &out, ntptestFlags{listen: "127.0.0.1:0", badPacket: "nope"}); err == nil {
		t.Fatal("accepted --bad-packet nope")
	}
}

// clockTestBuffer is a bytes.Buffer safe for one writer and one reader.
type clockTestBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *clockTestBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *clockTestBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
