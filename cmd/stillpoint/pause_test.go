package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/logging/logtest"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func startDevCluster(t *testing.T, skews map[string]time.Duration) *devcluster.Cluster {
	t.Helper()
	cfg := devcluster.DefaultConfig()
	cfg.APIAddr = "127.0.0.1:0"
	cfg.NTPPoll = 500 * time.Millisecond // stale after 4 polls: 800 ms went stale on a box at load 12
	cfg.DataDir = t.TempDir()
	cfg.Skews = skews
	cfg.Logger = logtest.New(t, zap.ErrorLevel)
	// A loaded box can push loopback NTP bounds past the production ε_max,
	// and offsets past max_drift (seen: 104ms spread on 2 busy cores); the
	// skew tests use 500ms.
	cfg.Runtime = func(rc *pb.RuntimeConfig) {
		rc.MaxErrorBoundNs = int64(time.Second)
		rc.MaxDriftNs = int64(300 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := devcluster.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	return c
}

// runCLI3 runs the command in-process and returns stdout and stderr apart.
func runCLI3(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = execCLI(t, &out, &errOut, 60*time.Second, args...)
	return out.String(), errOut.String(), err
}

// pauseCLI runs a pause command that is expected to complete. A pause that
// did not (exit 3: refused while this loaded box's clocks wobbled, or ended
// short by a leader change) is run again, at most 3 times: these tests are
// about the command's output, not the cluster's luck. Only completed ops
// leave restore points and "completed" rows, so the counts below hold.
func pauseCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		stdout, stderr, err = runCLI3(t, args...)
		if exitCode(err) != exitNotCompleted || attempt == 3 {
			return stdout, stderr, err
		}
		t.Logf("pause did not complete (%v); again:\n%s\n%s", err, stdout, stderr)
	}
}

func TestPauseCommandAgainstDevCluster(t *testing.T) {
	c := startDevCluster(t, nil)
	addr := "--addr=" + c.APIAddr()

	// The dev summary points at every server's /metrics and at the alarms.
	var summary bytes.Buffer
	sc := &cobra.Command{}
	sc.SetOut(&summary)
	printDevSummary(sc, c, devcluster.Config{}, 0)
	if strings.Count(summary.String(), "/metrics") != 3 || !strings.Contains(summary.String(), "stillpoint alarms watch") {
		t.Fatalf("dev summary:\n%s", summary.String())
	}

	out, progress, err := pauseCLI(t, "pause", "--cluster", "ledger", "--tz", "Asia/Tokyo", addr)
	if err != nil {
		t.Fatalf("pause: %v\n%s\n%s", err, out, progress)
	}
	for _, want := range []string{"State          completed", "Restore point  20", "+09:00 (Asia/Tokyo)", "epoch ms", "uncertainty  ±", "ledger-1  paused"} {
		if !strings.Contains(out, want) {
			t.Errorf("pause output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(progress, "holding") || !strings.Contains(progress, "completed") {
		t.Errorf("no progress on stderr:\n%s", progress)
	}

	out, progress, err = pauseCLI(t, "pause", "--cluster", "ledger", "-o", "json", addr)
	if err != nil {
		t.Fatalf("pause -o json: %v\n%s\n%s", err, out, progress)
	}
	var op pb.Operation
	if err := protojson.Unmarshal([]byte(out), &op); err != nil {
		t.Fatalf("pause -o json is not an Operation: %v\n%s", err, out)
	}
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || !strings.Contains(out, `"restore_point"`) {
		t.Fatalf("json: state %s, output:\n%s", op.GetState(), out)
	}

	out, _, err = runCLI3(t, "restore-points", "list", "--tz", "+05:30", addr)
	if err != nil || strings.Count(out, "op-") != 2 || !strings.Contains(out, "+05:30") {
		t.Fatalf("restore-points list: %v\n%s", err, out)
	}
	out, _, err = runCLI3(t, "restore-points", "show", op.GetOpId(), "--tz", "America/New_York", addr)
	if err != nil || !strings.Contains(out, "-05:00 (America/New_York)") || !strings.Contains(out, "Window start") {
		t.Fatalf("restore-points show: %v\n%s", err, out)
	}
	out, _, err = runCLI3(t, "ops", "list", addr)
	if err != nil || strings.Count(out, "completed") != 2 {
		t.Fatalf("ops list: %v\n%s", err, out)
	}
	out, _, err = runCLI3(t, "ops", "show", op.GetOpId(), addr)
	if err != nil || !strings.Contains(out, op.GetOpId()) {
		t.Fatalf("ops show: %v\n%s", err, out)
	}
	out, _, err = runCLI3(t, "ops", "watch", op.GetOpId(), addr)
	if err != nil || !strings.Contains(out, "completed") {
		t.Fatalf("ops watch of an ended op: %v\n%s", err, out)
	}
	// Exit 3 (a node not admitted now) is drift's answer, not a failure:
	// a loaded box can push a loopback clock past the limits.
	out, _, err = runCLI3(t, "drift", addr)
	if ee := (exitError{}); errors.As(err, &ee) && ee.code == exitNotAdmitted {
		err = nil
	}
	if err != nil || strings.Count(out, "synchronized") != 5 || !strings.Contains(out, "cluster ledger: offset spread") {
		t.Fatalf("drift: %v\n%s", err, out)
	}
	_, _, err = runCLI3(t, "unpause", "--op", "op-unknown", addr)
	if err == nil || !strings.Contains(err.Error(), "op-unknown") {
		t.Fatalf("unpause of unknown op: %v", err)
	}
}

func TestPauseCommandRefusedOnSkewNamesNode(t *testing.T) {
	c := startDevCluster(t, map[string]time.Duration{"ledger-1": 500 * time.Millisecond})
	_, _, err := runCLI3(t, "pause", "--cluster", "ledger", "--addr", c.APIAddr())
	if err == nil || !strings.Contains(err.Error(), "ledger-1: clock offset -") || !strings.Contains(err.Error(), "max_drift") {
		t.Fatalf("pause with skewed ledger-1: %v", err)
	}
	// drift says why and exits 3 (a cron line can use it), in JSON too.
	out, stderr, err := runCLI3(t, "drift", "--cluster", "ledger", "--addr", c.APIAddr())
	var ee exitError
	if !errors.As(err, &ee) || ee.code != exitNotAdmitted || !strings.Contains(out, "no: clock offset") || !strings.Contains(stderr, "ledger-1") {
		t.Fatalf("drift with ledger-1 refused: err %v (want exit %d), stderr %q\n%s", err, exitNotAdmitted, stderr, out)
	}
	out, _, err = runCLI3(t, "drift", "--cluster", "ledger", "-o", "json", "--addr", c.APIAddr())
	if !errors.As(err, &ee) || ee.code != exitNotAdmitted || !strings.Contains(out, `"admissible"`) {
		t.Fatalf("drift -o json with ledger-1 refused: err %v (want exit %d)\n%s", err, exitNotAdmitted, out)
	}
	// The auditor cluster, with honest clocks, is admitted: exit 0.
	if out, _, err := runCLI3(t, "drift", "--cluster", "auditor", "--addr", c.APIAddr()); err != nil {
		t.Fatalf("drift of an admissible cluster: %v\n%s", err, out)
	}
	for _, n := range c.Nodes() {
		if len(n.Sim.PausedIntervals()) != 0 {
			t.Errorf("%s was paused", n.Spec.Name)
		}
	}
	// The auditor cluster, with honest clocks, still pauses.
	if _, _, err := runCLI3(t, "pause", "--cluster", "auditor", "--addr", c.APIAddr()); err != nil {
		t.Fatalf("auditor pause: %v", err)
	}
}

func TestPauseCommandBadInput(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"pause"}, "--cluster is required"},
		{[]string{"pause", "--cluster", "x", "--hold", "-1s", "--tz", "Mars/Olympus"}, "--hold -1s"},
		{[]string{"pause", "--cluster", "x", "--tz", "Mars/Olympus"}, "--tz"},
		{[]string{"unpause"}, "--op is required"},
		{[]string{"pause", "--cluster", "ledger", "--cluster", "auditor", "--cluster", "ledger"}, "--cluster ledger is given twice: name each cluster once"},
		{[]string{"ops", "show"}, "accepts 1 arg"},
		{[]string{"dev", "--skew", "ledger-1"}, "want NODE=DURATION"},
		{[]string{"pause", "--cluster", "ledger", "--addr", "127.0.0.1:1", "--timeout", "2s"}, "cannot reach a coordinator server at 127.0.0.1:1"},
	}
	for _, tc := range tests {
		_, _, err := runCLI3(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
}

// Flag values out of range are refused before anything is sent, by a
// message that names the flag and the limit in the flag's own units.
func TestPauseFlagLimitsNameTheFlag(t *testing.T) {
	noServer := []string{"--addr", "127.0.0.1:1", "--timeout", "1s"}
	tests := []struct {
		args   []string
		want   []string
		reject []string
	}{
		{[]string{"pause", "--cluster", "ledger", "--hold", "99999h"}, []string{"--hold 99999h", "at most 1h"}, []string{"hold_ms", "cannot reach"}},
		{[]string{"pause", "--cluster", "ledger", "--hold", "1500us"}, []string{"--hold 1.5ms", "whole milliseconds"}, []string{"cannot reach"}},
		{[]string{"ops", "watch", "op-1", "--wait", "0s"}, []string{"--wait 0s", "must be positive"}, []string{"cannot reach"}},
		{[]string{"ops", "list", "--limit", "3000000000"}, []string{"--limit 3000000000", "2147483647"}, []string{"cannot reach"}},
		{[]string{"members", "--timeout", "-1s"}, []string{"--timeout -1s", "must be positive"}, []string{"cannot reach"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append(append([]string(nil), tc.args...), noServer...)
			if tc.args[0] == "members" {
				args = append([]string{"members", "--addr", "127.0.0.1:1"}, tc.args[1:]...)
			}
			code, _, errOut := runMain(t, args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d: %s", code, exitUsage, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q: %s", w, errOut)
				}
			}
			for _, r := range tc.reject {
				if strings.Contains(errOut, r) {
					t.Errorf("stderr says %q: %s", r, errOut)
				}
			}
		})
	}
}
