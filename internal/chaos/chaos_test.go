//go:build chaos

package chaos

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

var (
	flagRuns      = flag.Int("chaos.runs", 3, "pause cycles per scenario")
	flagScenarios = flag.String("chaos.scenarios", "", "comma-separated scenario names (empty: all)")
	flagSeed      = flag.Int64("chaos.seed", 0, "random seed (0: from the time)")
	flagProject   = flag.String("chaos.project", "spchaos", "compose project name")
	flagCompose   = flag.String("chaos.compose", "docker-compose", "compose command (docker-compose or \"docker compose\")")
	flagBin       = flag.String("chaos.bin", "../../.bin/stillpoint", "host stillpoint binary: the CLI under test")
	flagTable     = flag.String("chaos.table", "", "also write the result table to this file")
	flagKeep      = flag.Bool("chaos.keep", false, "leave the deployment running at the end")
)

// Slack on the oracles' bounds: the agent checks its node every second and
// an admin call times out after 5 s; containers on a loaded 2-core host add
// scheduling noise.
const (
	pausedSlack  = 3 * time.Second
	resumedSlack = 4 * time.Second
	terminalPad  = 30 * time.Second
)

// scenario is one fault, injected into every cycle (inject, at a random
// point of the hold) or around the whole scenario (setup/teardown).
type scenario struct {
	name string
	hold time.Duration
	// when picks the injection instant from the hold [start, deadline].
	when     func(r *rand.Rand, start, deadline time.Time) time.Time
	setup    func(c *cluster, r *rand.Rand) error
	teardown func(c *cluster) error
	// inject injects the fault and heals it; it runs while the op goes on
	// and returns once healed (cyc.opDone closes when the op is terminal).
	inject func(cyc *cycle) error
}

// midHold: uniformly inside the hold.
func midHold(r *rand.Rand, start, deadline time.Time) time.Time {
	span := deadline.Sub(start)
	if span <= 0 {
		return start
	}
	return start.Add(time.Duration(r.Int63n(int64(span))))
}

// lastSecond: inside the last second of the hold.
func lastSecond(r *rand.Rand, start, deadline time.Time) time.Time {
	from := deadline.Add(-time.Second)
	if from.Before(start) {
		from = start
	}
	return midHold(r, from, deadline)
}

func randDur(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int63n(int64(hi-lo)))
}

func scenarios(lease time.Duration) []scenario {
	killServers := func(cyc *cycle, n int) error {
		leader := cyc.c.leader()
		if leader == "" {
			return fmt.Errorf("no leader known")
		}
		victims := []string{leader}
		for _, s := range servers {
			if len(victims) < n && s != leader {
				victims = append(victims, s)
			}
		}
		var alive []string
		for _, s := range servers {
			if !contains(victims, s) {
				alive = append(alive, s)
			}
		}
		killed := time.Now()
		cyc.c.expectDown(victims...)
		defer cyc.c.expectDown()
		for _, v := range victims {
			if err := cyc.c.kill(v, "KILL"); err != nil {
				return err
			}
		}
		cyc.note("killed %s", strings.Join(victims, "+"))
		if n == 1 { // the survivors elect a leader without the victim
			if _, ok := cyc.c.leaderAmong(alive, 30*time.Second); !ok {
				cyc.violate("no leader among %v within 30s after killing %s", alive, leader)
			}
			cyc.noLeader = time.Since(killed)
		}
		time.Sleep(randDur(cyc.r, time.Second, 5*time.Second))
		for _, v := range victims {
			if err := cyc.c.start(v); err != nil {
				return err
			}
		}
		if n > 1 { // no quorum until the victims are back
			if _, ok := cyc.c.leaderAmong(servers, 60*time.Second); !ok {
				cyc.violate("no leader within 60s after restarting %v", victims)
			}
			cyc.noLeader = time.Since(killed)
		}
		return nil
	}
	agent := func(cyc *cycle) (node, svc string) {
		node = ledgers[cyc.r.Intn(len(ledgers))]
		return node, "agent-" + node
	}
	return []scenario{
		{name: "leader-killed", hold: 8 * time.Second, when: midHold,
			inject: func(cyc *cycle) error { return killServers(cyc, 1) }},
		{name: "leader+follower-killed", hold: 6 * time.Second, when: midHold,
			inject: func(cyc *cycle) error { return killServers(cyc, 2) }},
		{name: "follower-killed", hold: 6 * time.Second, when: midHold,
			inject: func(cyc *cycle) error {
				leader := cyc.c.leader()
				var f string
				for _, s := range servers {
					if s != leader {
						f = s
						break
					}
				}
				if err := cyc.c.kill(f, "KILL"); err != nil {
					return err
				}
				cyc.note("killed follower %s", f)
				time.Sleep(randDur(cyc.r, time.Second, 5*time.Second))
				return cyc.c.start(f)
			}},
		{name: "agent-kill9-restarted", hold: 4 * time.Second, when: midHold,
			inject: func(cyc *cycle) error {
				node, svc := agent(cyc)
				from := time.Now()
				if err := cyc.c.kill(svc, "KILL"); err != nil {
					return err
				}
				time.Sleep(randDur(cyc.r, time.Second, 5*time.Second))
				err := cyc.c.start(svc)
				cyc.down(node, from, time.Now())
				cyc.note("kill -9 %s, restarted", svc)
				return err
			}},
		{name: "agent-kill9-not-restarted", hold: 4 * time.Second, when: midHold,
			inject: func(cyc *cycle) error {
				node, svc := agent(cyc)
				from := time.Now()
				if err := cyc.c.kill(svc, "KILL"); err != nil {
					return err
				}
				<-cyc.opDone // the op ends without the agent
				time.Sleep(time.Until(from.Add(lease + 2*time.Second)))
				err := cyc.c.start(svc)
				cyc.down(node, from, time.Now())
				cyc.note("kill -9 %s, started again only after the op and the lease", svc)
				return err
			}},
		{name: "agent-partitioned", hold: 4 * time.Second, when: midHold,
			inject: func(cyc *cycle) error {
				node, _ := agent(cyc)
				net := cyc.c.project + "_stillpoint"
				if _, err := cyc.c.docker("network", "disconnect", net, cyc.c.ids[node]); err != nil {
					return err
				}
				cyc.note("pod %s disconnected from %s for lease+2s", node, net)
				<-cyc.opDone
				time.Sleep(lease + 2*time.Second)
				_, err := cyc.c.docker("network", "connect", "--ip", podIPs[node], net, cyc.c.ids[node])
				return err
			}},
		{name: "node-restarted", hold: 4 * time.Second, when: midHold,
			inject: func(cyc *cycle) error {
				node := ledgers[cyc.r.Intn(len(ledgers))]
				cyc.note("SIGHUP %s (in-place restart)", node)
				return cyc.c.kill(node, "HUP")
			}},
		{name: "node-restarted-last-second-2s", hold: 2 * time.Second, when: lastSecond,
			inject: func(cyc *cycle) error {
				node := ledgers[cyc.r.Intn(len(ledgers))]
				cyc.note("SIGHUP %s in the last second", node)
				return cyc.c.kill(node, "HUP")
			}},
		{name: "netem-loss-delay", hold: 4 * time.Second, when: midHold,
			inject: func(cyc *cycle) error {
				node, _ := agent(cyc)
				dev, err := cyc.c.iface(node)
				if err != nil {
					return err
				}
				if err := cyc.c.nsenter(node, "tc", "qdisc", "add", "dev", dev, "root", "netem",
					"delay", "100ms", "50ms", "loss", "20%"); err == nil {
					cyc.note("netem delay 100ms±50ms loss 20%% on %s %s", node, dev)
					<-cyc.opDone
					return cyc.c.nsenter(node, "tc", "qdisc", "del", "dev", dev, "root")
				}
				// No sch_netem in this kernel: 20% loss both ways with
				// iptables, delay from a 64 kbit/s token bucket's queue.
				loss := func(op, chain string) error {
					return cyc.c.nsenter(node, "iptables", op, chain, "-m", "statistic", "--mode", "random",
						"--probability", "0.2", "-j", "DROP")
				}
				if err := loss("-I", "INPUT"); err != nil {
					return err
				}
				if err := loss("-I", "OUTPUT"); err != nil {
					return err
				}
				if err := cyc.c.nsenter(node, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
					"rate", "64kbit", "burst", "1600", "latency", "500ms"); err != nil {
					return err
				}
				cyc.note("loss 20%% (iptables) and a 64 kbit/s queue (tbf; no netem here) on %s %s", node, dev)
				<-cyc.opDone
				if err := cyc.c.nsenter(node, "tc", "qdisc", "del", "dev", dev, "root"); err != nil {
					return err
				}
				if err := loss("-D", "INPUT"); err != nil {
					return err
				}
				return loss("-D", "OUTPUT")
			}},
		{name: "ntp-falseticker", hold: 4 * time.Second, when: midHold,
			setup: func(c *cluster, _ *rand.Rand) error {
				c.expectDown("ntp-2")
				if _, err := c.docker("stop", "-t", "0", c.ids["ntp-2"]); err != nil {
					return err
				}
				if _, err := c.docker("run", "-d", "--name", c.project+"-ntp-2-falseticker", "--network", c.project+"_stillpoint",
					"--ip", ntp2IP, "stillpoint:dev", "ntptest", "--listen=0.0.0.0:123", "--offset=3s"); err != nil {
					return err
				}
				// Every agent samples it at least once (poll 16 s).
				time.Sleep(20 * time.Second)
				return nil
			},
			teardown: func(c *cluster) error {
				if _, err := c.docker("rm", "-f", c.project+"-ntp-2-falseticker"); err != nil {
					return err
				}
				c.expectDown()
				return c.start("ntp-2")
			},
			inject: func(cyc *cycle) error { return nil }},
		{name: "ntp-all-lost-one-agent", hold: 4 * time.Second, when: midHold,
			inject: func(cyc *cycle) error {
				node, _ := agent(cyc)
				rule := []string{"OUTPUT", "-p", "udp", "--dport", "123", "-j", "DROP"}
				if err := cyc.c.nsenter(node, append([]string{"iptables", "-I"}, rule...)...); err != nil {
					return err
				}
				cyc.note("NTP dropped for %s", node)
				<-cyc.opDone
				return cyc.c.nsenter(node, append([]string{"iptables", "-D"}, rule...)...)
			}},
		{name: "cli-killed", hold: 4 * time.Second, when: midHold,
			inject: func(cyc *cycle) error {
				cyc.note("CLI kill -9")
				return cyc.cli.Process.Kill()
			}},
	}
}

// cycle is one pause under one fault.
type cycle struct {
	c        *cluster
	r        *rand.Rand
	cli      *exec.Cmd
	opDone   chan struct{}
	mu       sync.Mutex
	notes    []string
	viol     []string
	downs    map[string][]Downtime
	noLeader time.Duration
}

func (cyc *cycle) note(format string, a ...any) {
	cyc.mu.Lock()
	defer cyc.mu.Unlock()
	cyc.notes = append(cyc.notes, fmt.Sprintf(format, a...))
}

func (cyc *cycle) violate(format string, a ...any) {
	cyc.mu.Lock()
	defer cyc.mu.Unlock()
	cyc.viol = append(cyc.viol, fmt.Sprintf(format, a...))
}

func (cyc *cycle) down(node string, from, to time.Time) {
	cyc.mu.Lock()
	defer cyc.mu.Unlock()
	cyc.downs[node] = append(cyc.downs[node], Downtime{From: from, To: to})
}

// row is one scenario's line of the table.
type row struct {
	name                                       string
	runs, completed, aborted, invalid, refused int
	maxPaused                                  time.Duration
	violations                                 []string
}

var opIDRE = regexp.MustCompile(`op-[0-9]{8}T[0-9.]+Z-[0-9a-f]+`)

func TestChaos(t *testing.T) {
	for _, tool := range []string{"docker", "nsenter", "tc", "iptables", strings.Fields(*flagCompose)[0]} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: the fault suite needs docker, compose, nsenter, tc (iproute2) and iptables", tool)
		}
	}
	if _, err := os.Stat(*flagBin); err != nil {
		t.Fatalf("CLI binary %s: %v (make build)", *flagBin, err)
	}
	seed := *flagSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (-chaos.seed to repeat)", seed)
	r := rand.New(rand.NewSource(seed))

	c := newCluster(t, *flagCompose, *flagProject, *flagBin)
	c.up()
	if !*flagKeep {
		defer c.down()
	}
	if err := c.ready(3 * time.Minute); err != nil {
		t.Fatal(err)
	}
	cfg, err := c.config()
	if err != nil {
		t.Fatal(err)
	}
	lease := time.Duration(cfg.GetLeaseNs())
	t.Logf("lease %v", lease)

	want := map[string]bool{}
	for _, s := range strings.Split(*flagScenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			want[s] = true
		}
	}
	acked := map[string]time.Time{}
	checked := map[string]map[int64]bool{} // node -> interval starts already judged
	var rows []row
	for _, sc := range scenarios(lease) {
		if len(want) > 0 && !want[sc.name] {
			continue
		}
		rw := row{name: sc.name}
		if sc.setup != nil {
			if err := sc.setup(c, r); err != nil {
				t.Fatalf("%s setup: %v", sc.name, err)
			}
		}
		for i := 0; i < *flagRuns; i++ {
			runCycle(t, c, r, sc, lease, &rw, acked, checked)
		}
		if sc.teardown != nil {
			if err := sc.teardown(c); err != nil {
				t.Fatalf("%s teardown: %v", sc.name, err)
			}
		}
		t.Logf("%s: runs %d completed %d aborted %d invalid %d refused %d max paused %v violations %d",
			rw.name, rw.runs, rw.completed, rw.aborted, rw.invalid, rw.refused, rw.maxPaused.Round(time.Millisecond), len(rw.violations))
		rows = append(rows, rw)
	}

	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "SCENARIO\tRUNS\tCOMPLETED\tABORTED\tINVALID\tREFUSED\tMAX PAUSED / LEASE\tVIOLATIONS\n")
	total := 0
	for _, rw := range rows {
		total += len(rw.violations)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%v / %v\t%d\n", rw.name, rw.runs, rw.completed, rw.aborted, rw.invalid,
			rw.refused, rw.maxPaused.Round(time.Millisecond), lease, len(rw.violations))
	}
	_ = tw.Flush()
	fmt.Printf("\nchaos: seed %d, %d runs per scenario, lease %v\n%s", seed, *flagRuns, lease, b.String())
	if *flagTable != "" {
		if err := os.WriteFile(*flagTable, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
	for _, rw := range rows {
		for _, v := range rw.violations {
			t.Errorf("%s: %s", rw.name, v)
		}
	}
	if total > 0 {
		t.Errorf("%d violations", total)
	}
}

// runCycle runs one pause with the scenario's fault and judges it.
func runCycle(t *testing.T, c *cluster, r *rand.Rand, sc scenario, lease time.Duration, rw *row,
	acked map[string]time.Time, checked map[string]map[int64]bool) {
	rw.runs++
	if err := c.ready(3 * time.Minute); err != nil {
		rw.violations = append(rw.violations, "cluster did not recover before the cycle: "+err.Error())
		return
	}
	cyc := &cycle{c: c, r: r, opDone: make(chan struct{}), downs: map[string][]Downtime{}}
	began := time.Now()
	cli := exec.Command(c.bin, "pause", "--cluster", "ledger", "--hold", sc.hold.String(), "-o", "json",
		"--addr", addrs(), "--requested-by", "chaos/"+sc.name, "--wait", "5m", "--timeout", "5s")
	cyc.cli = cli
	var stdout strings.Builder
	cli.Stdout = &stdout
	stderr, err := cli.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	idc := make(chan string, 1)
	var stderrText strings.Builder
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			stderrText.WriteString(sc.Text() + "\n")
			if id := opIDRE.FindString(sc.Text()); id != "" && !sent {
				idc <- id
				sent = true
			}
		}
		if !sent {
			close(idc)
		}
	}()
	cliDone := make(chan error, 1)
	go func() { <-scanDone; cliDone <- cli.Wait() }()

	opID := findOp(c, began, idc, cliDone)
	if opID == "" {
		err := <-cliDone
		rw.refused++
		t.Logf("%s #%d: refused (%v): %s", sc.name, rw.runs, err, strings.TrimSpace(stderrText.String()))
		return
	}
	// Wait until the hold starts, then inject at a random point of it.
	var holdStart, deadline time.Time
	for time.Since(began) < time.Minute {
		o, err := c.op(opID)
		if err == nil && o.GetHoldDeadline().GetLocalTime() != nil {
			holdStart, deadline = time.Now(), o.GetHoldDeadline().GetLocalTime().AsTime()
			break
		}
		if err == nil && terminal(o.GetState()) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	injected := make(chan error, 1)
	if !deadline.IsZero() {
		go func() {
			time.Sleep(time.Until(sc.when(r, holdStart, deadline)))
			injected <- sc.inject(cyc)
		}()
	} else {
		cyc.note("op ended before its hold: no fault injected")
		injected <- nil
	}

	// Follow the op to its end from outside (the CLI may be killed).
	var op *pb.Operation
	for {
		o, err := c.op(opID)
		if err == nil && terminal(o.GetState()) {
			op = o
			break
		}
		if time.Since(began) > sc.hold+lease+terminalPad+2*time.Minute {
			cyc.violate("%s not terminal %v after it started (last: %v)", opID, time.Since(began).Round(time.Second), err)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(cyc.opDone)
	if err := <-injected; err != nil {
		t.Fatalf("%s #%d: injecting the fault: %v", sc.name, rw.runs, err)
	}
	cliErr := <-cliDone
	_ = cliErr

	// Let the deployment heal, then judge with late reports in.
	if err := c.ready(3 * time.Minute); err != nil {
		cyc.violate("did not recover after the fault: %v", err)
	}
	if op != nil {
		if o, err := c.op(opID); err == nil {
			op = o
		}
		judgeOp(cyc, op, sc, lease, rw, acked)
	}
	readAt := time.Now()
	ivs := map[string][]Interval{}
	for _, node := range ledgers {
		logs, err := c.logs(node)
		if err != nil {
			t.Fatalf("logs of %s: %v", node, err)
		}
		ivs[node] = ParseIntervals(logs, readAt)
		if checked[node] == nil {
			checked[node] = map[int64]bool{}
		}
		var fresh []Interval
		for _, iv := range ivs[node] {
			if !checked[node][iv.Start.UnixNano()] && iv.End.After(began.Add(-time.Second)) {
				fresh = append(fresh, iv)
				if !iv.Open {
					checked[node][iv.Start.UnixNano()] = true
				}
			}
		}
		v, longest := CheckPausedLength(node, fresh, lease, pausedSlack, cyc.downs[node])
		cyc.viol = append(cyc.viol, v...)
		if longest > rw.maxPaused {
			rw.maxPaused = longest
		}
	}
	if op != nil && op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED && !op.GetInvalidatedAfterCompletion() {
		w := op.GetWindow()
		win := Window{OpID: opID, Start: w.GetStart().AsTime(), End: w.GetEnd().AsTime(), Restore: w.GetRestorePoint().AsTime()}
		for _, tr := range op.GetTargets() {
			win.Targets = append(win.Targets, tr.GetNode())
		}
		cyc.viol = append(cyc.viol, CheckWindow(win, ivs)...)
	}
	if cat, err := c.catalog(); err != nil {
		cyc.violate("catalog unreadable after the cycle: %v", err)
	} else {
		cyc.viol = append(cyc.viol, CheckCatalog(acked, cat)...)
	}
	state := "none"
	if op != nil {
		state = strings.TrimPrefix(op.GetState().String(), "OPERATION_STATE_")
		if op.GetInvalidatedAfterCompletion() {
			state += " (invalidated after completion: " + op.GetInvalidatedReason() + ")"
		} else if op.GetReason() != "" {
			state += " (" + op.GetReason() + ")"
		}
	}
	t.Logf("%s #%d: %s %s; %s; %d violations", sc.name, rw.runs, opID, state, strings.Join(cyc.notes, ", "), len(cyc.viol))
	for _, v := range cyc.viol {
		t.Logf("  VIOLATION %s", v)
	}
	rw.violations = append(rw.violations, cyc.viol...)
}

// findOp returns the id of the op the CLI started at began: from its
// progress lines, or the newest ledger op created since. Empty when the CLI
// exits without one (refused); the CLI's exit is then left in cliDone.
func findOp(c *cluster, began time.Time, idc <-chan string, cliDone chan error) string {
	for {
		select {
		case id, ok := <-idc:
			if ok && id != "" {
				return id
			}
			idc = nil
		case err := <-cliDone:
			cliDone <- err // for the caller
			if ops, lerr := c.listOps(); lerr == nil {
				for _, o := range ops {
					if !o.GetCreatedAt().GetLocalTime().AsTime().Before(began.Add(-2 * time.Second)) {
						return o.GetOpId()
					}
				}
			}
			return ""
		case <-time.After(50 * time.Millisecond):
			if ops, err := c.listOps(); err == nil {
				for _, o := range ops {
					if !o.GetCreatedAt().GetLocalTime().AsTime().Before(began.Add(-2 * time.Second)) {
						return o.GetOpId()
					}
				}
			}
		}
	}
}

// judgeOp counts the outcome and checks the op-level oracles.
func judgeOp(cyc *cycle, op *pb.Operation, sc scenario, lease time.Duration, rw *row, acked map[string]time.Time) {
	switch {
	case op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED && !op.GetInvalidatedAfterCompletion():
		rw.completed++
		acked[op.GetOpId()] = time.Now()
	case op.GetState() == pb.OperationState_OPERATION_STATE_ABORTED:
		rw.aborted++
	default:
		rw.invalid++
	}
	created, ended := op.GetCreatedAt().GetLocalTime().AsTime(), op.GetEndedAt().GetLocalTime().AsTime()
	if took, bound := ended.Sub(created), sc.hold+lease+cyc.noLeader+terminalPad; took > bound {
		cyc.violate("%s took %v to end: more than hold %v + lease %v + %v without a leader + %v", op.GetOpId(),
			took.Round(time.Millisecond), sc.hold, lease, cyc.noLeader.Round(time.Millisecond), terminalPad)
	}
	var lastUnpause time.Time
	for _, tr := range op.GetTargets() {
		if u := tr.GetUnpauseSentAt().GetLocalTime(); u != nil && u.AsTime().After(lastUnpause) {
			lastUnpause = u.AsTime()
		}
	}
	var deadline time.Time
	if d := op.GetHoldDeadline().GetLocalTime(); d != nil {
		deadline = d.AsTime()
	}
	cyc.viol = append(cyc.viol, CheckResumedHold(op.GetOpId(), len(op.GetLeaders()), deadline, lastUnpause, cyc.noLeader, resumedSlack)...)
}

func terminal(s pb.OperationState) bool {
	return s == pb.OperationState_OPERATION_STATE_COMPLETED || s == pb.OperationState_OPERATION_STATE_ABORTED ||
		s == pb.OperationState_OPERATION_STATE_INVALID
}
