package agent

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/ntptest"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// An agent's stamps (ack, unpause, events) carry the estimate evaluated at
// the stamp's own reading: its bound grown to that instant, stale once too
// old, disrupted after a wall-clock step — and, after the NTP servers go
// silent, the last good offset aged by drift, never offset 0 ± 0.
func TestStampCarriesEstimateAtStampInstant(t *testing.T) {
	clk := clock.NewManual(time.Now())
	var servers []string
	var srvs []*ntptest.Server
	for range 3 {
		cfg := ntptest.DefaultConfig()
		cfg.Now = clk.Now
		cfg.Settings.Offset = 80 * time.Millisecond
		srv, err := ntptest.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		servers, srvs = append(servers, srv.Addr()), append(srvs, srv)
	}
	scfg := clock.DefaultConfig()
	scfg.Servers, scfg.Clock, scfg.Kernel = servers, clk, nil
	scfg.PollInterval, scfg.StaleAfterPolls, scfg.Timeout = time.Second, 4, 200*time.Millisecond
	sampler, err := clock.NewSampler(scfg)
	if err != nil {
		t.Fatal(err)
	}
	good := sampler.SampleOnce(context.Background())
	if good.Status != clock.Synchronized {
		t.Fatalf("round: %v (%s)", good.Status, good.Reason)
	}
	c := newCore(coreConfig{Node: "n1", MaxLease: time.Minute, CallTimeout: time.Second}, &fakeAdmin{}, sampler, store{dir: t.TempDir()}, zap.NewNop(), coreHooks{})

	for _, srv := range srvs {
		if err := srv.Update(func(s *ntptest.Settings) { s.Drop = true }); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(2 * time.Second)
	sampler.SampleOnce(context.Background()) // fails: every server silent
	clk.Advance(time.Second)
	st := c.stampNow()
	est := st.GetEstimate()
	age := st.GetLocalTime().AsTime().Sub(good.AsOf)
	if err := clock.ValidateStamp(st); err != nil {
		t.Fatalf("stamp 3 s after a good round with one failed round: %v", err)
	}
	if est.GetOffsetNs() != int64(good.Offset) || time.Duration(est.GetErrorBoundNs()) != good.BoundAt(good.AsOf.Add(age)) || est.GetAgeNs() != int64(age) || est.GetFailedRounds() != 1 {
		t.Fatalf("stamp estimate offset %d ± %d age %d failed %d, want %v ± %v at age %v, 1 failed round",
			est.GetOffsetNs(), est.GetErrorBoundNs(), est.GetAgeNs(), est.GetFailedRounds(), good.Offset, good.BoundAt(good.AsOf.Add(age)), age)
	}
	clk.Advance(2 * time.Second) // past 4 polls
	if st := c.stampNow(); st.GetEstimate().GetStatus() != pb.ClockStatus_CLOCK_STATUS_STALE {
		t.Fatalf("stamp past 4 polls: %v", st.GetEstimate().GetStatus())
	}
	for _, srv := range srvs {
		if err := srv.Update(func(s *ntptest.Settings) { s.Drop = false }); err != nil {
			t.Fatal(err)
		}
	}
	sampler.SampleOnce(context.Background())
	clk.Step(time.Second)
	if st := c.stampNow(); st.GetEstimate().GetStatus() != pb.ClockStatus_CLOCK_STATUS_DISRUPTED || clock.ValidateStamp(st) == nil {
		t.Fatalf("stamp after a 1 s step: %v", st.GetEstimate().GetStatus())
	}
}
