package ntptest

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/beevik/ntp"
)

func startServer(t *testing.T, f func(*Settings)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	if f != nil {
		f(&cfg.Settings)
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func query(t *testing.T, s *Server, timeout time.Duration) (*ntp.Response, error) {
	t.Helper()
	return ntp.QueryWithOptions(s.Addr(), ntp.QueryOptions{Timeout: timeout})
}

func TestServerAnswersLikeNTP(t *testing.T) {
	tests := []struct {
		name   string
		set    func(*Settings)
		check  func(t *testing.T, r *ntp.Response)
		verErr error
	}{
		{
			name: "honest server at +40ms",
			set: func(s *Settings) {
				s.Offset = 40 * time.Millisecond
				s.RootDelay = 2 * time.Millisecond
				s.RootDispersion = time.Millisecond
			},
			check: func(t *testing.T, r *ntp.Response) {
				bound := r.RTT/2 + r.Precision + time.Millisecond // the client measures the host clock: only RTT/2 + precision of error
				if d := r.ClockOffset - 40*time.Millisecond; d > bound || d < -bound {
					t.Errorf("offset %v, want 40ms ± %v", r.ClockOffset, bound)
				}
				if r.Stratum != 1 || r.Leap != ntp.LeapNoWarning {
					t.Errorf("stratum %d leap %d", r.Stratum, r.Leap)
				}
				if d := r.RootDelay - 2*time.Millisecond; d < -20*time.Microsecond || d > 20*time.Microsecond {
					t.Errorf("root delay %v, want 2ms", r.RootDelay)
				}
				if d := r.RootDispersion - time.Millisecond; d < -20*time.Microsecond || d > 20*time.Microsecond {
					t.Errorf("root dispersion %v, want 1ms", r.RootDispersion)
				}
				if r.Precision != time.Second>>20 {
					t.Errorf("precision %v, want 2^-20 s", r.Precision)
				}
			},
		},
		{name: "leap 3", set: func(s *Settings) { s.Leap = LeapNotInSync }, verErr: ntp.ErrInvalidLeapSecond},
		{name: "stratum 16", set: func(s *Settings) { s.Stratum = 16 }, verErr: ntp.ErrInvalidStratum},
		{name: "stratum 0", set: func(s *Settings) { s.Stratum = 0 }, verErr: ntp.ErrKissOfDeath},
		{
			name:   "kiss-of-death RATE",
			set:    func(s *Settings) { s.KissCode = "RATE" },
			verErr: ntp.ErrKissOfDeath,
			check: func(t *testing.T, r *ntp.Response) {
				if r.KissCode != "RATE" || r.Stratum != 0 {
					t.Errorf("kiss code %q stratum %d", r.KissCode, r.Stratum)
				}
			},
		},
		{name: "leap second pending", set: func(s *Settings) { s.Leap = LeapAdd }, check: func(t *testing.T, r *ntp.Response) {
			if r.Leap != ntp.LeapAddSecond {
				t.Errorf("leap %v", r.Leap)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.set)
			r, err := query(t, s, 2*time.Second)
			if err != nil {
				t.Fatalf("query %s: %v", s.Addr(), err)
			}
			if err := r.Validate(); !errors.Is(err, tc.verErr) {
				t.Fatalf("Validate = %v, want %v", err, tc.verErr)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestServerBadPackets(t *testing.T) {
	tests := []struct {
		mode BadPacket
		want error
	}{
		{BadPacketShort, ntp.ErrInvalidTime},
		{BadPacketWrongOrigin, ntp.ErrServerResponseMismatch},
		{BadPacketWrongMode, ntp.ErrInvalidMode},
		{BadPacketZeroTransmit, ntp.ErrInvalidTransmitTime},
	}
	for _, tc := range tests {
		t.Run(tc.mode.String(), func(t *testing.T) {
			s := startServer(t, func(st *Settings) { st.BadPacket = tc.mode })
			_, err := query(t, s, 2*time.Second)
			if !errors.Is(err, tc.want) {
				t.Fatalf("query error = %v, want %v", err, tc.want)
			}
		})
	}
}

// The impossible mode is a well-formed reply whose server processing time
// exceeds the round trip; the library accepts it and clamps its RTT to 0.
func TestServerImpossibleReply(t *testing.T) {
	s := startServer(t, func(st *Settings) { st.BadPacket = BadPacketImpossible })
	r, err := query(t, s, 2*time.Second)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	ts := r.Timestamps
	if proc, rt := ts.ServerXmit.Sub(ts.ServerRecv), ts.ClientRecv.Sub(ts.ClientXmit); proc <= rt || proc < ImpossibleShift {
		t.Fatalf("T3−T2 %v, T4−T1 %v: want processing above the round trip by ~%v", proc, rt, ImpossibleShift)
	}
}

func TestServerDropTimesOut(t *testing.T) {
	s := startServer(t, func(st *Settings) { st.Drop = true })
	_, err := query(t, s, 100*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("query error = %v, want a timeout", err)
	}
	if s.Requests() != 1 || s.Replies() != 0 {
		t.Fatalf("requests %d replies %d, want 1 and 0", s.Requests(), s.Replies())
	}
}

func TestServerLatencyIsCoveredByHalfRTT(t *testing.T) {
	const lat = 20 * time.Millisecond
	s := startServer(t, func(st *Settings) { st.Latency = lat })
	r, err := query(t, s, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.RTT < lat {
		t.Fatalf("RTT %v, want at least the added latency %v", r.RTT, lat)
	}
	// The delay is all on the request path: the offset shifts by about
	// lat/2, and RTT/2 bounds the shift.
	if r.ClockOffset < lat/4 || r.ClockOffset > r.RTT/2+r.Precision {
		t.Fatalf("offset %v with RTT %v: want about +%v, within RTT/2", r.ClockOffset, r.RTT, lat/2)
	}
}

func TestServerLiarIsFarAndRandom(t *testing.T) {
	s := startServer(t, func(st *Settings) {
		st.Liar = true
		st.LiarMin = 300 * time.Millisecond
		st.LiarSpread = 200 * time.Millisecond
	})
	seen := map[time.Duration]bool{}
	for range 20 {
		r, err := query(t, s, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("a liar must look valid: %v", err)
		}
		abs := r.ClockOffset.Abs()
		if abs < 290*time.Millisecond || abs > 510*time.Millisecond {
			t.Fatalf("liar offset %v, want 300-500ms either sign", r.ClockOffset)
		}
		seen[r.ClockOffset.Round(time.Millisecond)] = true
	}
	if len(seen) < 5 {
		t.Fatalf("liar offsets not random: %v", seen)
	}
}

func TestServerUpdateAtRunTime(t *testing.T) {
	s := startServer(t, nil)
	r, err := query(t, s, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.ClockOffset.Abs() > r.RTT/2+r.Precision {
		t.Fatalf("offset %v before update, want ~0", r.ClockOffset)
	}
	if err := s.Update(func(st *Settings) { st.Offset = -time.Second }); err != nil {
		t.Fatal(err)
	}
	r, err = query(t, s, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d := r.ClockOffset + time.Second; d.Abs() > r.RTT/2+r.Precision {
		t.Fatalf("offset %v after update, want -1s", r.ClockOffset)
	}
	if err := s.Update(func(st *Settings) { st.Leap = 7; st.Latency = -1 }); err == nil {
		t.Fatal("Update accepted leap 7 and negative latency")
	}
	if got := s.Settings(); got.Leap != 0 || got.Offset != -time.Second {
		t.Fatalf("rejected update changed settings: %+v", got)
	}
}

func TestSettingsValidateReportsEveryProblem(t *testing.T) {
	s := DefaultSettings()
	s.Leap = 4
	s.RootDelay = -1
	s.KissCode = "TOOLONG"
	s.BadPacket = 99
	err := s.Validate()
	if err == nil {
		t.Fatal("Validate accepted bad settings")
	}
	for _, want := range []string{"leap 4", "root delay", "kiss code", "bad-packet mode 99"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestParseBadPacket(t *testing.T) {
	for m := BadPacketNone; m <= BadPacketImpossible; m++ {
		got, err := ParseBadPacket(m.String())
		if err != nil || got != m {
			t.Errorf("ParseBadPacket(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseBadPacket("garbage"); err == nil {
		t.Error("ParseBadPacket accepted garbage")
	}
}

func TestCloseIsIdempotentAndStopsServing(t *testing.T) {
	s := startServer(t, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := query(t, s, 100*time.Millisecond); err == nil {
		t.Fatal("closed server still answers")
	}
}

func contains(s, sub string) bool {
	return strings.Contains(s, sub)
}
