package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/benchtab"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

var (
	footprintBin    = flag.String("footprint.bin", "", "stillpoint binary BenchmarkFootprint runs (empty: go build one)")
	footprintAgents = flag.String("footprint.agents", "100", "agent process counts BenchmarkFootprint measures, comma-separated")
	footprintSettle = flag.Duration("footprint.settle", 10*time.Second, "wait after every agent is synchronized, before measuring")
	footprintIdle   = flag.Duration("footprint.idle", 30*time.Second, "idle interval the CPU time is measured over")
	benchMarkdown   = flag.Bool("bench.markdown", false, "print the summary table as Markdown")
)

// Goals of issue 17 (P6).
const (
	agentRSSGoal  = 25 << 20
	serverRSSGoal = 60 << 20
)

// BenchmarkFootprint (P6) runs a real deployment as separate processes on
// loopback: 3 NTP servers (stillpoint ntptest), 3 coordinator servers
// (Raft on disk, bootstrap-expect 3), and N simulated nodes (workload
// off) each with its agent (lan gossip profile, NTP poll 16s: the
// defaults). Once every agent is alive and synchronized in the servers'
// view and a settle time has passed, it reads each agent's and server's
// VmRSS and utime+stime from /proc, again after an idle interval, and
// prints RSS (p50/max) and idle CPU per process kind against the goals
// (agent ≤ 25 MiB, server ≤ 60 MiB), plus the gossip bytes a member sends
// and receives per second (memberlist's counters on the servers'
// /metrics) for the scale projection.
//
//	go test -run '^$' -bench '^BenchmarkFootprint$' -benchtime 1x ./cmd/stillpoint -args -footprint.agents=100
func BenchmarkFootprint(b *testing.B) {
	var sizes []int
	for _, f := range strings.Split(*footprintAgents, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("-footprint.agents %q: %q is not a positive agent count", *footprintAgents, f)
		}
		sizes = append(sizes, n)
	}
	bin := footprintBinary(b)
	tab := benchtab.Table{
		Title:   "P6 footprint: separate processes on loopback, measured from /proc",
		Columns: []string{"agents", "process", "n", "RSS p50", "RSS max", "goal", "anon p50", "idle CPU p50", "idle CPU max", "gossip out/s", "gossip in/s (UDP)"},
	}
	var ages []string
	for _, n := range sizes {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			fp := runFootprint(b, bin, n)
			for _, k := range fp.kinds {
				goal := "-"
				if k.goal > 0 {
					verdict := "met"
					if slices.Max(k.rss) > k.goal {
						verdict = "MISSED"
					}
					goal = fmt.Sprintf("%s ≤ %s", verdict, mib(k.goal))
				}
				out, in := "-", "-"
				if k.gossipOut > 0 {
					out, in = fmt.Sprintf("%.0f B", k.gossipOut), fmt.Sprintf("%.0f B", k.gossipIn)
				}
				if err := tab.AddRow(fmt.Sprint(n), k.name, fmt.Sprint(len(k.rss)), mib(quantileInt(k.rss, 0.5)), mib(slices.Max(k.rss)), goal, mib(quantileInt(k.anon, 0.5)),
					pct(quantileF(k.cpu, 0.5)), pct(slices.Max(k.cpu)), out, in); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(slices.Max(k.rss))/(1<<20), k.name+"-rss-max-MiB")
				b.ReportMetric(quantileF(k.cpu, 0.5)*100, k.name+"-cpu-p50-%")
			}
			if a, err := benchtab.Summarize(fp.metaAge); err == nil {
				ages = append(ages, fmt.Sprintf("%d agents: agents' metadata age in server-1's view p50 %s, p99 %s, max %s (NTP poll 16s: a fresh estimate is re-gossiped at most every 16s)",
					n, benchtab.Dur(a.P50), benchtab.Dur(a.P99), benchtab.Dur(a.Max)))
				b.ReportMetric(float64(a.P99)/1e6, "meta-age-p99-ms")
			}
			if fp.gossipPerMember > 0 {
				b.ReportMetric(fp.gossipPerMember, "gossip-out-B/s/member")
			}
		})
	}
	tab.Notes = []string{
		fmt.Sprintf("3 ntptest + 3 servers (lan gossip, Raft WAL on disk) + N simnodes (workload off) + N agents (lan gossip, NTP poll 16s); settle %v, idle interval %v; CPU = Δ(utime+stime)/interval of one core", *footprintSettle, *footprintIdle),
		"anon: RssAnon (heap, stacks); the rest of RSS is the static binary's file-backed pages the process touched (RssFile), shared with every process running the same binary and reclaimable",
		"gossip: memberlist bytes sent (UDP+TCP) and received (UDP) per second by server-1; every member runs the same probe/gossip/push-pull schedule, so it stands for an agent's",
		fmt.Sprintf("load average after the run: %s (the machine was shared with other work)", benchtab.LoadAvg()),
	}
	tab.Notes = append(tab.Notes, ages...)
	if err := tab.Write(os.Stdout, *benchMarkdown); err != nil {
		b.Error(err)
	}
}

func mib(n int64) string   { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
func pct(f float64) string { return fmt.Sprintf("%.2f%%", f*100) }

func quantileInt(xs []int64, q float64) int64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(max(int(q*float64(len(s))+0.999999)-1, 0), len(s)-1)]
}

func quantileF(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(max(int(q*float64(len(s))+0.999999)-1, 0), len(s)-1)]
}

// footprintBinary is -footprint.bin, or a binary built into a temp dir.
func footprintBinary(b *testing.B) string {
	b.Helper()
	if *footprintBin != "" {
		if _, err := os.Stat(*footprintBin); err != nil {
			b.Fatalf("-footprint.bin: %v", err)
		}
		return *footprintBin
	}
	out := filepath.Join(b.TempDir(), "stillpoint")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, msg)
	}
	return out
}

// proc is one started process.
type proc struct {
	name string
	cmd  *exec.Cmd
}

// procKind is the figures of one kind of process.
type procKind struct {
	name                string
	goal                int64
	rss                 []int64
	anon                []int64 // RssAnon: what the process allocated itself
	cpu                 []float64
	gossipOut, gossipIn float64
}

type footprint struct {
	kinds           []procKind
	gossipPerMember float64
	metaAge         []time.Duration
}

// freeAddr returns a loopback host:port free for TCP and UDP both (a
// gossip port needs both).
func freeAddr(b *testing.B) string {
	b.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return addr
		}
	}
	b.Fatal("no loopback port free for both TCP and UDP")
	return ""
}

func runFootprint(b *testing.B, bin string, n int) footprint {
	dir := b.TempDir()
	var started []*proc
	var logs []*os.File
	b.Cleanup(func() {
		stopAll(started)
		for _, f := range logs {
			_ = f.Close()
		}
	})
	start := func(name string, args ...string) *proc {
		b.Helper()
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			b.Fatalf("start %s: %v", name, err)
		}
		p := &proc{name: name, cmd: cmd}
		started, logs = append(started, p), append(logs, logf)
		return p
	}
	var ntp []string
	for i := range 3 {
		addr := freeAddr(b)
		start(fmt.Sprintf("ntp-%d", i+1), "ntptest", "--listen", addr)
		ntp = append(ntp, addr)
	}
	type srv struct{ gossip, grpc, raft, metrics string }
	var srvs []srv
	for range 3 {
		srvs = append(srvs, srv{freeAddr(b), freeAddr(b), freeAddr(b), freeAddr(b)})
	}
	var seeds []string
	for _, s := range srvs {
		seeds = append(seeds, s.gossip)
	}
	var servers []*proc
	for i, s := range srvs {
		id := fmt.Sprintf("server-%d", i+1)
		servers = append(servers, start(id, "server", "--node-id", id, "--data-dir", filepath.Join(dir, id),
			"--bootstrap-expect", "3", "--raft-bind", s.raft, "--grpc-listen", s.grpc, "--gossip-bind", s.gossip,
			"--gossip-join", strings.Join(seeds, ","), "--metrics-listen", s.metrics, "--acl-enabled=false",
			"--ntp-servers", strings.Join(ntp, ","), "--log-level", "warn"))
	}
	cc, err := grpcx.NewClient(srvs[0].grpc, grpcx.TLS{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cc.Close() })
	cl := pb.NewCoordinatorServiceClient(cc)

	// Agents start in batches of 10, each batch waited on until it is
	// alive and synchronized: 100 processes joining at once on a small
	// loaded box starve the servers past any deadline.
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(120+6*n)*time.Second)
	defer cancel()
	var agents []*proc
	for i := range n {
		name := fmt.Sprintf("ledger-%03d", i+1)
		admin := freeAddr(b)
		start(name+"-sim", "simnode", "--id", name, "--listen", admin, "--workload=false", "--log-level", "warn")
		agents = append(agents, start(name, "agent", "--node-name", name, "--cluster", "ledger", "--role", "ledger",
			"--admin-address", admin, "--ntp-servers", strings.Join(ntp, ","), "--gossip-bind", freeAddr(b),
			"--gossip-join", strings.Join(seeds, ","), "--grpc-listen", freeAddr(b), "--metrics-listen", "",
			"--data-dir", filepath.Join(dir, name), "--log-level", "warn"))
		if len(agents)%10 == 0 || len(agents) == n {
			if err := waitMembers(ctx, cl, len(agents)); err != nil {
				b.Fatalf("%d of %d agents started: %v (load average %s; logs in %s)", len(agents), n, err, benchtab.LoadAvg(), dir)
			}
		}
	}
	select {
	case <-time.After(*footprintSettle):
	case <-ctx.Done():
	}
	metricsURL := "http://" + srvs[0].metrics + "/metrics"
	g0, err := gossipBytes(metricsURL)
	if err != nil {
		b.Fatal(err)
	}
	before := readAll(b, append(append([]*proc(nil), agents...), servers...))
	t0 := time.Now()
	time.Sleep(*footprintIdle) // the idle interval being measured
	after := readAll(b, append(append([]*proc(nil), agents...), servers...))
	elapsed := time.Since(t0)
	g1, err := gossipBytes(metricsURL)
	if err != nil {
		b.Fatal(err)
	}
	kinds := []procKind{{name: "agent", goal: agentRSSGoal}, {name: "server", goal: serverRSSGoal}}
	hz := clockTicks()
	for _, p := range append(append([]*proc(nil), agents...), servers...) {
		k := &kinds[0]
		if strings.HasPrefix(p.name, "server-") {
			k = &kinds[1]
		}
		a, z := before[p.name], after[p.name]
		k.rss = append(k.rss, z.rss)
		k.anon = append(k.anon, z.anon)
		k.cpu = append(k.cpu, float64(z.ticks-a.ticks)/hz/elapsed.Seconds())
	}
	fp := footprint{kinds: kinds}
	if fp.metaAge, err = metaAges(cl); err != nil {
		b.Fatal(err)
	}
	kinds[1].gossipOut = (g1.sent - g0.sent) / elapsed.Seconds()
	kinds[1].gossipIn = (g1.received - g0.received) / elapsed.Seconds()
	fp.gossipPerMember = kinds[1].gossipOut
	return fp
}

// metaAges is how old each agent's gossiped metadata (its clock estimate
// and node state) is in server-1's view: how fresh gossip keeps it.
func metaAges(cl pb.CoordinatorServiceClient) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cl.ListMembers(ctx, &pb.ListMembersRequest{Cluster: "ledger"})
	if err != nil {
		return nil, fmt.Errorf("list members for their metadata age: %w", err)
	}
	var out []time.Duration
	for _, m := range resp.GetMembers() {
		out = append(out, time.Duration(m.GetMetaAgeMs())*time.Millisecond)
	}
	if len(out) == 0 {
		return nil, errors.New("list members: no agents")
	}
	return out, nil
}

// waitMembers waits until n agents are alive and synchronized in the view
// of the server cl talks to.
func waitMembers(ctx context.Context, cl pb.CoordinatorServiceClient, n int) error {
	last := "no answer yet"
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := cl.ListMembers(cctx, &pb.ListMembersRequest{Cluster: "ledger"})
		cancel()
		if err != nil {
			last = err.Error()
		} else {
			ready := 0
			for _, m := range resp.GetMembers() {
				if m.GetStatus() == pb.MemberStatus_MEMBER_STATUS_ALIVE && m.GetClock().GetStatus() == pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED {
					ready++
				}
			}
			if ready >= n {
				return nil
			}
			last = fmt.Sprintf("%d of %d agents alive and synchronized", ready, n)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the agents: %w (last: %s)", ctx.Err(), last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// procSample is one /proc reading.
type procSample struct {
	rss   int64 // bytes
	anon  int64 // RssAnon, bytes: heap, stacks (the rest of RSS is the binary's file pages)
	ticks int64 // utime + stime, clock ticks
}

func readAll(b *testing.B, ps []*proc) map[string]procSample {
	b.Helper()
	out := map[string]procSample{}
	for _, p := range ps {
		s, err := readProc(p.cmd.Process.Pid)
		if err != nil {
			b.Fatalf("%s (pid %d): %v", p.name, p.cmd.Process.Pid, err)
		}
		out[p.name] = s
	}
	return out
}

// readProc reads VmRSS and RssAnon from /proc/PID/status and utime+stime from
// /proc/PID/stat.
func readProc(pid int) (procSample, error) {
	var s procSample
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(st), "\n") {
		for key, dst := range map[string]*int64{"VmRSS:": &s.rss, "RssAnon:": &s.anon} {
			rest, ok := strings.CutPrefix(line, key)
			if !ok {
				continue
			}
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return s, fmt.Errorf("%s line %q: want N kB", key, line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return s, fmt.Errorf("%s line %q: %w", key, line, err)
			}
			*dst = kb << 10
		}
	}
	if s.rss == 0 {
		return s, errors.New("no VmRSS in /proc status (process exited?)")
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name (which may hold spaces) in parentheses:
	// state is field 3; utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(stat), ')')
	f := strings.Fields(string(stat)[i+1:])
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	stt, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("/proc/%d/stat utime/stime: %w", pid, err)
	}
	s.ticks = ut + stt
	return s, nil
}

// clockTicks is USER_HZ (getconf CLK_TCK; 100 on Linux if unknown).
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}

// gossipCounters is memberlist's byte counters on one server.
type gossipCounters struct{ sent, received float64 }

// gossipBytes sums memberlist_{udp,tcp}_sent and memberlist_udp_received
// (memberlist counts no TCP bytes received) on a /metrics page.
func gossipBytes(url string) (gossipCounters, error) {
	var g gossipCounters
	resp, err := http.Get(url)
	if err != nil {
		return g, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return g, fmt.Errorf("%s: %s", url, resp.Status)
	}
	found := false
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		base, _, _ := strings.Cut(name, "{")
		base = strings.TrimPrefix(base, "stillpoint_") // go-metrics' service name
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch base {
		case "memberlist_udp_sent", "memberlist_tcp_sent":
			g.sent += v
			found = true
		case "memberlist_udp_received":
			g.received += v
		}
	}
	if err := sc.Err(); err != nil {
		return g, err
	}
	if !found {
		return g, fmt.Errorf("%s: no memberlist_{udp,tcp}_sent counters", url)
	}
	return g, nil
}

// stopAll ends the processes the benchmark started, all at once: SIGTERM,
// then SIGKILL to any still running after 10s.
func stopAll(ps []*proc) {
	done := make(chan struct{}, len(ps))
	for _, p := range ps {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		go func() { _ = p.cmd.Wait(); done <- struct{}{} }()
	}
	deadline := time.After(10 * time.Second)
	for range ps {
		select {
		case <-done:
		case <-deadline:
			for _, p := range ps {
				_ = p.cmd.Process.Kill() // ours; an exited one just errors
			}
			deadline = nil
			<-done
		}
	}
}
