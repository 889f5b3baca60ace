package coordinator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/ntptest"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// assertCertified: a COMPLETED op's window was computed only from readings
// taken under a synchronized estimate, and the simnode oracle holds.
func assertCertified(t *testing.T, c *devcluster.Cluster, op *pb.Operation) {
	t.Helper()
	for _, tg := range op.GetTargets() {
		for what, st := range map[string]*pb.StampedTime{"ack": tg.GetAckedAt(), "unpause": tg.GetUnpauseSentAt()} {
			if err := clock.ValidateStamp(st); err != nil {
				t.Errorf("op %s COMPLETED with %s's %s reading uncertified: %v", op.GetOpId(), tg.GetNode(), what, err)
			}
		}
	}
	checkOracle(t, c, op)
}

func setDrop(t *testing.T, servers []*ntptest.Server, drop bool) {
	t.Helper()
	for _, s := range servers {
		if err := s.Update(func(st *ntptest.Settings) { st.Drop = drop }); err != nil {
			t.Fatal(err)
		}
	}
}

// Every NTP server of one agent goes silent mid-hold. Its unpause reading
// carries the last good estimate aged by drift while that is fresh (the op
// may complete, and the oracle holds); once the estimate is stale the op
// is INVALID naming the node — never a window certified by offset 0 ± 0.
func TestNTPLostMidHoldNeverCertifiesAGuess(t *testing.T) {
	c := startDev(t, func(cfg *devcluster.Config) { cfg.OwnNTP = []string{"ledger-2"} })
	ntp := c.Node("ledger-2").NTP
	if len(ntp) == 0 {
		t.Fatal("ledger-2 has no NTP servers of its own")
	}

	// Hold well past the point where ledger-2's estimate goes stale (4
	// polls of 200 ms): the op must be INVALID, naming ledger-2.
	opID := startPause(t, c, client(t, c, 0), &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 2500}, holding).GetOpId()
	setDrop(t, ntp, true)
	op := watchEnd(t, c, opID, 30*time.Second)
	switch op.GetState() {
	case pb.OperationState_OPERATION_STATE_COMPLETED:
		assertCertified(t, c, op)
		t.Fatalf("op COMPLETED though ledger-2 had no NTP for the whole 2.5 s hold; its unpause estimate: %v", op.GetTargets()[1].GetUnpauseSentAt().GetEstimate())
	case pb.OperationState_OPERATION_STATE_INVALID:
		if !strings.Contains(op.GetReason(), "ledger-2") || !strings.Contains(op.GetReason(), "not synchronized") {
			t.Fatalf("INVALID for %q, want ledger-2 named as not synchronized", op.GetReason())
		}
	default:
		t.Fatalf("op ended %s (%s)", op.GetState(), op.GetReason())
	}
	for _, n := range c.Nodes() {
		testcluster.WaitFor(t, 10*time.Second, func() (bool, string) { return !n.Sim.Paused(), n.Spec.Name + " still paused" })
	}

	// NTP back; a short hold; the servers go away mid-hold: the unpause
	// reading is the last good estimate, aged — certified, or the op is
	// invalid, but a completed window holds.
	setDrop(t, ntp, false)
	waitAdmissible(t, c)
	opID = startPause(t, c, client(t, c, 0), &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 300}, holding).GetOpId()
	for _, srv := range ntp { // closed: every query is refused at once, a round fails every poll
		_ = srv.Close()
	}
	op = watchEnd(t, c, opID, 30*time.Second)
	switch op.GetState() {
	case pb.OperationState_OPERATION_STATE_COMPLETED:
		assertCertified(t, c, op)
		for _, tg := range op.GetTargets() {
			if tg.GetNode() != "ledger-2" {
				continue
			}
			unp := tg.GetUnpauseSentAt().GetEstimate()
			aged := unp.GetBaseErrorBoundNs() + int64(float64(unp.GetAgeNs())*unp.GetMaxDriftPpm()/1e6)
			if unp.GetFailedRounds() > 0 && (unp.GetAgeNs() <= 0 || unp.GetErrorBoundNs() < aged) {
				t.Errorf("ledger-2 unpause estimate after %d failed rounds: ± %d at age %d, want the last good bound %d aged by max drift (≥ %d)",
					unp.GetFailedRounds(), unp.GetErrorBoundNs(), unp.GetAgeNs(), unp.GetBaseErrorBoundNs(), aged)
			}
			t.Logf("ledger-2 unpause reading: offset %v ± %v, age %v, %d failed rounds",
				time.Duration(unp.GetOffsetNs()), time.Duration(unp.GetErrorBoundNs()), time.Duration(unp.GetAgeNs()), unp.GetFailedRounds())
		}
	case pb.OperationState_OPERATION_STATE_INVALID:
		if !strings.Contains(op.GetReason(), "ledger-2") {
			t.Fatalf("INVALID for %q, want ledger-2 named", op.GetReason())
		}
	default:
		t.Fatalf("op ended %s (%s)", op.GetState(), op.GetReason())
	}
}

// One agent's wall clock is stepped by a second mid-hold: its estimate is
// disrupted, and the op does not complete on it.
func TestClockStepMidHoldIsNeverCertified(t *testing.T) {
	c := startDev(t, func(cfg *devcluster.Config) {
		cfg.Skews = map[string]time.Duration{"ledger-1": 0}
		cfg.NTPPoll = time.Minute // no round repairs the step before the unpause
	})
	skewed, ok := c.Node("ledger-1").Clock().(*clock.Skewed)
	if !ok {
		t.Fatal("ledger-1 has no steppable clock")
	}
	opID := startPause(t, c, client(t, c, 0), &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 1500}, holding).GetOpId()
	skewed.Jump(time.Second)
	op := watchEnd(t, c, opID, 30*time.Second)
	if op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED {
		assertCertified(t, c, op)
		t.Fatalf("op COMPLETED across a 1 s step of ledger-1's clock: window %v – %v", op.GetWindow().GetStart().AsTime(), op.GetWindow().GetEnd().AsTime())
	}
	if !strings.Contains(op.GetReason(), "ledger-1") {
		t.Fatalf("op ended %s for %q, want ledger-1 named", op.GetState(), op.GetReason())
	}
}

// waitAdmissible waits until every ledger agent would be admitted.
func waitAdmissible(t *testing.T, c *devcluster.Cluster) {
	t.Helper()
	testcluster.WaitFor(t, 20*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := client(t, c, 0).GetDrift(ctx, &pb.GetDriftRequest{Cluster: "ledger"})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range resp.GetEntries() {
			if !e.GetAdmissible() {
				return false, e.GetMember().GetName() + ": " + strings.Join(e.GetReasons(), "; ")
			}
		}
		return true, ""
	})
}

// One agent's host daemon slews its clock at 5,000 ppm (an injected
// adjtimex source): its ack and unpause readings report the rate and carry
// a bound grown by it, the window accounts for it, and the oracle holds.
func TestSlewingHostWidensItsReadings(t *testing.T) {
	const slewPPM = 5000
	slewing := clock.KernelFunc(func() (clock.KernelClock, error) {
		return clock.KernelClock{TickUS: 10050, NominalTickUS: 10000}, nil // +50 µs a tick: 5,000 ppm
	})
	c := startDev(t, func(cfg *devcluster.Config) {
		cfg.Kernels = map[string]clock.Kernel{"ledger-1": slewing}
		cfg.NTPPoll = 2 * time.Second // a slower poll: readings age, the slew shows
	})
	opID := startPause(t, c, client(t, c, 0), &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 500}, holding).GetOpId()
	op := watchEnd(t, c, opID, 30*time.Second)
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("op ended %s (%s)", op.GetState(), op.GetReason())
	}
	assertCertified(t, c, op)
	for _, tg := range op.GetTargets() {
		for what, st := range map[string]*pb.StampedTime{"ack": tg.GetAckedAt(), "unpause": tg.GetUnpauseSentAt()} {
			e := st.GetEstimate()
			if tg.GetNode() != "ledger-1" {
				if e.GetSlewPpm() >= slewPPM {
					t.Errorf("%s %s: slew %v ppm from another node's kernel", tg.GetNode(), what, e.GetSlewPpm())
				}
				continue
			}
			// At least the slew over the reading's age, on top of the base
			// bound and the max drift.
			least := e.GetBaseErrorBoundNs() + int64(float64(e.GetAgeNs())*(e.GetMaxDriftPpm()+slewPPM)/1e6)
			if e.GetSlewPpm() != slewPPM || e.GetErrorBoundNs() < least-1 || e.GetSlewOffsetNs() <= 0 {
				t.Errorf("ledger-1 %s reading: slew %v ppm, slewed %d ns, bound %d ns at age %d ns: want %d ppm and a bound of at least %d",
					what, e.GetSlewPpm(), e.GetSlewOffsetNs(), e.GetErrorBoundNs(), e.GetAgeNs(), slewPPM, least)
			}
		}
	}
}
