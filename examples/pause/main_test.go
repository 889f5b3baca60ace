package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/logging/logtest"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

var (
	restorePointLine = regexp.MustCompile(`(?m)^restore point (\S+) ±\S+ \(operation (op-\S+)\)$`)
	refusedLine      = regexp.MustCompile(`(?m)^pause \S+: .* \(reason (\S*)\)$`)
	endedLine        = regexp.MustCompile(`(?m)^pause \S+: operation (op-\S+) ended `)
)

// The example, built with the go tool and run against a secure dev cluster
// (mTLS and an ACL token, as `stillpoint dev` starts it), prints the
// restore point of the operation it ran.
func TestExampleRunsAPauseOnADevCluster(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pause")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := devcluster.DefaultConfig()
	cfg.APIAddr = "127.0.0.1:0"
	cfg.NTPPoll = 500 * time.Millisecond
	cfg.DataDir = t.TempDir()
	cfg.TLS, cfg.ACL = true, true
	cfg.Logger = logtest.New(t, zap.ErrorLevel)
	cfg.Runtime = func(rc *pb.RuntimeConfig) { // loopback clocks on a loaded box
		rc.MaxErrorBoundNs = int64(time.Second)
		rc.MaxDriftNs = int64(300 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dev, err := devcluster.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Stop(context.Background()) })
	tl := dev.ClientTLS()
	noToken := []string{"--addr", dev.APIAddr(), "--ca", tl.CAFile, "--cert", tl.CertFile, "--key", tl.KeyFile, "--cluster", "ledger"}
	args := append([]string{"--token", dev.ACLToken()}, noToken...)

	// Without the token the pause is refused, and the example says so.
	out, errOut, code := run(ctx, t, bin, noToken...)
	if code != 1 || !strings.Contains(errOut, "Unauthenticated") {
		t.Fatalf("without --token: exit %d, stdout %q, stderr %q; want exit 1 and Unauthenticated", code, out, errOut)
	}

	// A loaded box may refuse a pause (a clock out of bounds or drifting,
	// nothing done during a leader change) or end it because an agent's
	// lease ran out: those are run again once the leader takes pauses, at
	// most 5 times in all; anything else fails at once.
	direct, err := dev.Client(0)
	if err != nil {
		t.Fatal(err)
	}
	const attempts = 5
	for attempt := 1; ; attempt++ {
		if err := dev.WaitPausesAccepted(ctx); err != nil {
			t.Fatal(err)
		}
		out, errOut, code = run(ctx, t, bin, args...)
		if code == 0 {
			break
		}
		why := loadRetryReason(ctx, t, direct, code, errOut)
		if why == "" || attempt == attempts {
			t.Fatalf("attempt %d of %d: exit %d (not a retry a loaded machine explains, or the last attempt); stdout %q, stderr %q", attempt, attempts, code, out, errOut)
		}
		t.Logf("attempt %d of %d: %s; again", attempt, attempts, why)
	}
	m := restorePointLine.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("exit %d; stdout %q, stderr %q; want exit 0 and a restore point line", code, out, errOut)
	}
	rp, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		t.Fatalf("restore point %q: %v", m[1], err)
	}
	got, err := direct.GetOperation(ctx, &pb.GetOperationRequest{OpId: m[2]})
	if err != nil {
		t.Fatalf("get %s: %v", m[2], err)
	}
	if want := got.GetOperation().GetWindow().GetRestorePoint().AsTime(); !rp.Equal(want) {
		t.Fatalf("the example printed %s; operation %s has restore point %s", rp, m[2], want)
	}
	t.Logf("example printed: %s", strings.TrimSpace(out))
}

// loadRetryReason says why a failed run of the example (exit code, its
// stderr) is one a loaded machine explains: a pause refused for a reason
// devcluster.LoadRefusal accepts (exit 1), or an
// op that ended because an agent's lease ran out (exit 3, judged on the op
// as the servers recorded it). "" for anything else.
func loadRetryReason(ctx context.Context, t *testing.T, cl pb.CoordinatorServiceClient, code int, stderr string) string {
	t.Helper()
	switch code {
	case 1:
		if m := refusedLine.FindStringSubmatch(stderr); m != nil && devcluster.LoadRefusal(m[1], stderr) {
			return "pause refused, reason " + m[1]
		}
	case 3:
		m := endedLine.FindStringSubmatch(stderr)
		if m == nil {
			return ""
		}
		got, err := cl.GetOperation(ctx, &pb.GetOperationRequest{OpId: m[1]})
		if err != nil {
			t.Fatalf("get %s: %v", m[1], err)
		}
		return devcluster.LeaseEnd(got.GetOperation())
	}
	return ""
}

// run runs the example binary without any STILLPOINT_* variable of the
// test's environment.
func run(ctx context.Context, t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STILLPOINT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run %s: %v", bin, err)
	}
	return out.String(), errOut.String(), code
}
