package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/logging/logtest"
	"github.com/stillpoint-dev/stillpoint/internal/simnode"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// readmeGRPCurl is the comment that marks the README block this test runs.
const readmeGRPCurl = "<!-- cmd/stillpoint/grpcurl_test.go runs this block"

// grpcurlBlock is the README's "Automation with grpcurl" block: the auth
// line, its --insecure alternative (a comment), and the commands, each
// with its continuation lines joined.
type grpcurlBlock struct {
	auth, insecureAuth string
	steps              []string
}

func readGRPCurlBlock(t *testing.T) grpcurlBlock {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), readmeGRPCurl)
	if !ok {
		t.Fatalf("README.md has no %q marker before its grpcurl block", readmeGRPCurl)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	body, _, ok2 := strings.Cut(rest, "```\n")
	if !ok || !ok2 {
		t.Fatal("README.md: no ```sh block after the grpcurl marker")
	}
	var blk grpcurlBlock
	var cur string
	for line := range strings.SplitSeq(body, "\n") {
		if c, ok := strings.CutSuffix(line, "\\"); ok {
			cur += c
			continue
		}
		line = strings.TrimSpace(cur + line)
		cur = ""
		switch {
		case line == "":
		case strings.HasPrefix(line, "# auth="):
			blk.insecureAuth = strings.TrimPrefix(line, "# ")
		case strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "auth="):
			blk.auth = line
		default:
			blk.steps = append(blk.steps, line)
		}
	}
	if blk.auth == "" || blk.insecureAuth == "" {
		t.Fatalf("README grpcurl block: no auth=(...) line or no commented --insecure alternative:\n%s", body)
	}
	return blk
}

// step returns the block's command containing what; every command must be
// one the test checks.
func (b grpcurlBlock) step(t *testing.T, what string) string {
	t.Helper()
	for _, s := range b.steps {
		if strings.Contains(s, what) {
			return s
		}
	}
	t.Fatalf("README grpcurl block has no command with %q: %q", what, b.steps)
	return ""
}

// grpcurlEnv finds grpcurl (.bin first, as `make tools` installs it) and
// jq, and returns the PATH that has them. Under CI a missing tool fails.
func grpcurlEnv(t *testing.T) (grpcurl, path string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs two dev clusters")
	}
	bin, _ := filepath.Abs("../../.bin")
	grpcurl = filepath.Join(bin, "grpcurl")
	if _, err := os.Stat(grpcurl); err != nil {
		if grpcurl, err = exec.LookPath("grpcurl"); err != nil {
			missing(t, "grpcurl is not installed: run `make tools` (installs it into .bin)")
		}
	}
	path = filepath.Dir(grpcurl) + string(os.PathListSeparator) + os.Getenv("PATH")
	if _, err := exec.LookPath("jq"); err != nil {
		missing(t, "jq is not installed (the README's grpcurl commands use it): apt-get install jq")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		missing(t, "bash is not installed (the README's grpcurl commands are bash)")
	}
	return grpcurl, path
}

func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// devForGRPCurl starts the dev cluster in-process as `stillpoint dev`
// does (secure unless insecure) and writes its banner and env file; it
// returns the cluster and the env file the banner names.
func devForGRPCurl(t *testing.T, insecure bool) (*devcluster.Cluster, string) {
	t.Helper()
	cfg := devcluster.DefaultConfig()
	cfg.APIAddr = "127.0.0.1:0"
	if err := devSecure(&cfg, !insecure, !insecure, !insecure); err != nil {
		t.Fatal(err)
	}
	cfg.NTPPoll = 500 * time.Millisecond
	cfg.DataDir = t.TempDir()
	cfg.Logger = logtest.New(t, zap.ErrorLevel)
	// A loaded box's loopback bounds and offsets (as startDevCluster).
	cfg.Runtime = func(rc *pb.RuntimeConfig) {
		rc.MaxErrorBoundNs = int64(time.Second)
		rc.MaxDriftNs = int64(300 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := devcluster.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	var banner bytes.Buffer
	cmd := &cobra.Command{}
	cmd.SetOut(&banner)
	if err := printDevSummary(cmd, c, cfg, 0); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^or: source (\S+)$`).FindStringSubmatch(banner.String())
	if m == nil {
		t.Fatalf("no env file in the banner:\n%s", banner.String())
	}
	return c, m[1]
}

// shellRun runs one README command in bash as a user's shell would, after
// sourcing the dev env file and the auth line; vars are set before it, and
// assign names a variable the command sets, printed as its output.
type shellRun struct {
	path, envFile, auth string
	vars                map[string]string
}

type shellResult struct {
	stdout, stderr string
	code           int
}

func (r shellRun) run(t *testing.T, command, assign string) shellResult {
	t.Helper()
	script := "set -eo pipefail\nsource " + shellQuote(r.envFile) + "\n" + r.auth + "\n" + command + "\n"
	if assign != "" {
		script += `printf '%s' "$` + assign + `"` + "\n"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "STILLPOINT_") && !strings.HasPrefix(e, "PATH=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, "PATH="+r.path)
	for k, v := range r.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	res := shellResult{stdout: out.String(), stderr: errOut.String()}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		res.code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("bash: %v", err)
	}
	t.Logf("$ %s\n(exit %d)\n%s%s", command, res.code, res.stdout, res.stderr)
	return res
}

// grpcurlRestorePoint is GetRestorePoint's answer as grpcurl prints it.
type grpcurlRestorePoint struct {
	RestorePoint struct {
		OpID    string `json:"opId"`
		Cluster string `json:"cluster"`
		Window  struct {
			Start         time.Time `json:"start"`
			End           time.Time `json:"end"`
			RestorePoint  time.Time `json:"restorePoint"`
			UncertaintyNs string    `json:"uncertaintyNs"`
			WidthNs       string    `json:"widthNs"`
		} `json:"window"`
		Targets []string `json:"targets"`
		Invalid bool     `json:"invalid"`
	} `json:"restorePoint"`
}

// TestGRPCurlDrivesAPause proves the API with a client no one here wrote:
// grpcurl, through server reflection only, runs the README's commands
// against the dev cluster (mTLS, ACL token, gossip key; then --insecure):
// list the services, start a pause of the ledger cluster, watch it to
// COMPLETED, read its restore point from grpcurl's JSON, and check the
// point against every simulated node's own record of when it was paused.
// Without the token StartPause is refused UNAUTHENTICATED (exit 80) and
// starts nothing.
func TestGRPCurlDrivesAPause(t *testing.T) {
	grpcurl, path := grpcurlEnv(t)
	blk := readGRPCurlBlock(t)
	for _, tc := range []struct {
		name     string
		insecure bool
	}{{"secure", false}, {"insecure", true}} {
		t.Run(tc.name, func(t *testing.T) {
			c, envFile := devForGRPCurl(t, tc.insecure)
			sh := shellRun{path: path, envFile: envFile, auth: blk.auth, vars: map[string]string{}}
			if tc.insecure {
				sh.auth = blk.insecureAuth
			}
			checked := map[string]bool{}
			listCmd := blk.step(t, `"$STILLPOINT_ADDR" list`)
			checked[listCmd] = true
			res := sh.run(t, listCmd, "")
			for _, svc := range []string{"stillpoint.v1.CoordinatorService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
				if res.code != 0 || !slices.Contains(strings.Fields(res.stdout), svc) {
					t.Errorf("grpcurl list: exit %d, want %s listed:\n%s%s", res.code, svc, res.stdout, res.stderr)
				}
			}
			describe := blk.step(t, " describe ")
			checked[describe] = true
			// Reflection serves the descriptors with their comments: the
			// method comes with its documentation.
			if res := sh.run(t, describe, ""); res.code != 0 || !strings.Contains(res.stdout, "rpc StartPause ( .stillpoint.v1.StartPauseRequest ) returns ( .stillpoint.v1.StartPauseResponse )") ||
				!regexp.MustCompile(`(?m)^// .*role operate`).MatchString(res.stdout) {
				t.Errorf("grpcurl describe: exit %d, want StartPause's signature under its comment (naming role operate):\n%s%s", res.code, res.stdout, res.stderr)
			}

			reqStep := blk.step(t, "REQ=$(")
			start, watch, get := blk.step(t, "/StartPause"), blk.step(t, "/WatchOperation"), blk.step(t, "/GetRestorePoint")
			checked[reqStep], checked[start], checked[watch], checked[get] = true, true, true, true
			assign, _, ok := strings.Cut(start, "=$(")
			if !ok {
				t.Fatalf("README StartPause command does not assign the op id (VAR=$(...)): %s", start)
			}
			newRequestID := func() string {
				res := sh.run(t, reqStep, "REQ")
				if id := strings.TrimSpace(res.stdout); res.code == 0 && id != "" && id != sh.vars["REQ"] {
					return id
				}
				t.Fatalf("README request id command: exit %d, %q (last %q), want a new id:\n%s", res.code, res.stdout, sh.vars["REQ"], res.stderr)
				return ""
			}
			direct, err := c.Client(0)
			if err != nil {
				t.Fatal(err)
			}
			var opID string
			var began time.Time
			const attempts = 5
			for attempt := 1; ; attempt++ {
				began = time.Now()
				// A loaded box may refuse a pause (FAILED_PRECONDITION,
				// grpcurl exit 64+9: a clock out of bounds or drifting, an
				// agent's admission check timed out), do nothing during a
				// leader change (UNAVAILABLE, 64+14, reason NOT_APPLIED) or
				// end an op because an agent's lease ran out (see
				// devcluster.LoadRefusal, LeaseEnd): those are tried again
				// once the leader takes pauses, at most attempts times in
				// all; anything else fails at once. A pause that was not started is sent again with the
				// same request id; one that ended is a new pause, with a
				// new id.
				if err := c.WaitPausesAccepted(context.Background()); err != nil {
					t.Fatal(err)
				}
				if attempt == 1 || opID != "" {
					sh.vars["REQ"] = newRequestID()
				}
				res := sh.run(t, start, assign)
				opID = strings.TrimSpace(res.stdout)
				if res.code == 64+9 || res.code == 64+14 {
					reason := grpcurlErrorReason(res.stderr)
					if !devcluster.LoadRefusal(reason, res.stderr) || attempt == attempts {
						t.Fatalf("StartPause through grpcurl, attempt %d of %d: exit %d, reason %q (not a retry a loaded machine explains, or the last attempt):\n%s",
							attempt, attempts, res.code, reason, res.stderr)
					}
					t.Logf("attempt %d of %d: pause not started (exit %d, reason %s); again", attempt, attempts, res.code, reason)
					opID = ""
					continue
				}
				if res.code != 0 || !strings.HasPrefix(opID, "op-") {
					t.Fatalf("StartPause through grpcurl: exit %d, op id %q:\n%s", res.code, opID, res.stderr)
				}
				sh.vars[assign] = opID
				res = sh.run(t, watch, "")
				state := lastWatchedState(t, res)
				if state == "OPERATION_STATE_COMPLETED" {
					break
				}
				got, err := direct.GetOperation(context.Background(), &pb.GetOperationRequest{OpId: opID})
				if err != nil {
					t.Fatalf("get %s: %v", opID, err)
				}
				why := devcluster.LeaseEnd(got.GetOperation())
				if why == "" || attempt == attempts {
					t.Fatalf("op %s ended %s at attempt %d of %d (not a retry a loaded machine explains, or the last attempt); last watch:\n%s",
						opID, state, attempt, attempts, res.stdout)
				}
				t.Logf("attempt %d of %d: %s; again", attempt, attempts, why)
			}
			// The same StartPause again, same request id (a client that
			// lost the answer): the op it started, not a second pause.
			if res := sh.run(t, start, assign); res.code != 0 || strings.TrimSpace(res.stdout) != opID {
				t.Errorf("StartPause retried with request id %s: exit %d, op %q, want %s:\n%s", sh.vars["REQ"], res.code, res.stdout, opID, res.stderr)
			}
			res = sh.run(t, get, "")
			ended := time.Now()
			var rp grpcurlRestorePoint
			if err := json.Unmarshal([]byte(res.stdout), &rp); res.code != 0 || err != nil {
				t.Fatalf("GetRestorePoint through grpcurl: exit %d, %v:\n%s%s", res.code, err, res.stdout, res.stderr)
			}
			checkGRPCurlRestorePoint(t, c, rp, opID, began, ended)
			for _, s := range blk.steps {
				if !checked[s] {
					t.Errorf("README grpcurl block: this test does not check %q; check it here or take it out", s)
				}
			}
			// A refusal's ErrorInfo reaches grpcurl through reflection: the
			// reason a script can switch on, besides the exit code.
			sh.vars["REQ"] = newRequestID()
			unknown := strings.Replace(start, `\"cluster\": \"ledger\"`, `\"cluster\": \"no-such-cluster\"`, 1)
			if res := sh.run(t, unknown, assign); res.code != 64+5 || grpcurlErrorReason(res.stderr) != "UNKNOWN_CLUSTER" {
				t.Errorf("StartPause of an unknown cluster: exit %d, want 69 (64 + NOT_FOUND) and reason UNKNOWN_CLUSTER in:\n%s", res.code, res.stderr)
			}
			if !tc.insecure {
				checkRefusedWithoutToken(t, c, grpcurl)
			}
			if n := c.Nodes()[0]; n != nil {
				out, err := exec.Command(grpcurl, "-plaintext", n.Sim.Addr(), "list").CombinedOutput()
				if err != nil || !slices.Contains(strings.Fields(string(out)), "rpc.Admin") {
					t.Errorf("grpcurl -plaintext %s list (%s's admin port): %v, want rpc.Admin:\n%s", n.Sim.Addr(), n.Spec.Name, err, out)
				}
			}
		})
	}
}

// lastWatchedState reads the README's `jq -c` lines of WatchOperation: one
// object per change, the last terminal.
// grpcurlReason is the ErrorInfo reason in the details grpcurl prints with
// a failed call.
var grpcurlReason = regexp.MustCompile(`"reason":\s*"([^"]*)"`)

// grpcurlErrorReason is the ErrorInfo reason of the error grpcurl printed
// on stderr ("" when it printed none).
func grpcurlErrorReason(stderr string) string {
	if m := grpcurlReason.FindStringSubmatch(stderr); m != nil {
		return m[1]
	}
	return ""
}

func lastWatchedState(t *testing.T, res shellResult) string {
	t.Helper()
	if res.code != 0 {
		t.Fatalf("WatchOperation through grpcurl: exit %d:\n%s%s", res.code, res.stdout, res.stderr)
	}
	var last string
	sc := bufio.NewScanner(strings.NewReader(res.stdout))
	for sc.Scan() {
		var v struct {
			State string `json:"state"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("WatchOperation line %q: %v", sc.Text(), err)
		}
		last = v.State
	}
	if last == "" {
		t.Fatalf("WatchOperation printed no state:\n%s", res.stdout)
	}
	return last
}

// checkGRPCurlRestorePoint checks the restore point grpcurl printed: its
// arithmetic, that it lies within the test's own span of the pause, and
// that it is inside every target's paused-and-drained interval as its
// simnode recorded it on the real clock (the oracle of internal/e2e).
func checkGRPCurlRestorePoint(t *testing.T, c *devcluster.Cluster, rp grpcurlRestorePoint, opID string, began, ended time.Time) {
	t.Helper()
	p, w := rp.RestorePoint, rp.RestorePoint.Window
	if p.OpID != opID || p.Cluster != "ledger" || p.Invalid {
		t.Errorf("restore point of op %q cluster %q invalid %v, want op %s cluster ledger valid", p.OpID, p.Cluster, p.Invalid, opID)
	}
	if want := []string{"ledger-1", "ledger-2", "ledger-3"}; !slices.Equal(p.Targets, want) {
		t.Errorf("restore point targets %v, want %v", p.Targets, want)
	}
	unc, err1 := strconv.ParseInt(w.UncertaintyNs, 10, 64)
	width, err2 := strconv.ParseInt(w.WidthNs, 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("window uncertaintyNs %q widthNs %q: %v", w.UncertaintyNs, w.WidthNs, err)
	}
	span := w.End.Sub(w.Start)
	d := time.Duration(unc) - span/2
	switch {
	case !w.Start.Before(w.End):
		t.Errorf("window start %s is not before end %s", w.Start, w.End)
	case time.Duration(width) != span:
		t.Errorf("widthNs %d, want end − start = %d", width, span)
	case d < -1 || d > 1:
		t.Errorf("uncertaintyNs %d, want (end − start)/2 = %d", unc, span/2)
	case !w.RestorePoint.Equal(w.Start.Add(span / 2)):
		t.Errorf("restorePoint %s, want the midpoint %s", w.RestorePoint, w.Start.Add(span/2))
	case w.Start.Before(began) || w.End.After(ended):
		t.Errorf("window [%s, %s] is outside the test's span of the pause [%s, %s]", w.Start, w.End, began, ended)
	}
	for _, name := range p.Targets {
		n := c.Node(name)
		if n == nil {
			t.Errorf("restore point names %s, which the dev cluster does not run", name)
			continue
		}
		ivs := n.Sim.PausedIntervals()
		inside := slices.ContainsFunc(ivs, func(iv simnode.Interval) bool {
			return !iv.Start.After(w.Start) && !iv.End.IsZero() && !iv.End.Before(w.End)
		})
		if !inside {
			t.Errorf("window [%s, %s] is not inside any paused-and-drained interval of %s: %v", w.Start, w.End, name, ivs)
		}
	}
}

// checkRefusedWithoutToken: StartPause without the authorization header is
// refused UNAUTHENTICATED (grpcurl exits 64+16) naming the role it needs,
// after reflection (public) found the method; no operation is started.
// Without a client certificate even reflection is refused.
func checkRefusedWithoutToken(t *testing.T, c *devcluster.Cluster, grpcurl string) {
	t.Helper()
	cl, err := c.Client(0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before, err := cl.ListOperations(ctx, &pb.ListOperationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	tl := c.ClientTLS()
	args := []string{"-cacert", tl.CAFile, "-cert", tl.CertFile, "-key", tl.KeyFile, "-d", `{"cluster": "ledger"}`, c.APIAddr(), "stillpoint.v1.CoordinatorService/StartPause"}
	cmd := exec.CommandContext(ctx, grpcurl, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	t.Logf("$ grpcurl %s\n(%v)\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 64+16 {
		t.Errorf("StartPause without a token: %v, want grpcurl's exit 80 (64 + UNAUTHENTICATED)", err)
	}
	for _, want := range []string{"Code: Unauthenticated", "StartPause needs a token with role operate", "authorization: Bearer"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("StartPause without a token: stderr lacks %q:\n%s", want, errOut.String())
		}
	}
	// Reflection is public (the schema is published); mTLS still needs the
	// client certificate.
	list, err := exec.CommandContext(ctx, grpcurl, "-cacert", tl.CAFile, "-cert", tl.CertFile, "-key", tl.KeyFile, c.APIAddr(), "list").CombinedOutput()
	if err != nil || !slices.Contains(strings.Fields(string(list)), "stillpoint.v1.CoordinatorService") {
		t.Errorf("grpcurl list without a token: %v, want the services listed:\n%s", err, list)
	}
	if out, err := exec.CommandContext(ctx, grpcurl, "-cacert", tl.CAFile, c.APIAddr(), "list").CombinedOutput(); err == nil {
		t.Errorf("grpcurl list without a client certificate succeeded, want refused:\n%s", out)
	}
	after, err := cl.ListOperations(ctx, &pb.ListOperationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after.GetOperations()) != len(before.GetOperations()) {
		t.Errorf("a refused StartPause changed the operations: %d before, %d after", len(before.GetOperations()), len(after.GetOperations()))
	}
}
