//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Addresses and names fixed by deploy/docker/compose.yaml.
var (
	serverAddrs = map[string]string{"server-1": "172.28.0.11:7400", "server-2": "172.28.0.12:7400", "server-3": "172.28.0.13:7400"}
	servers     = []string{"server-1", "server-2", "server-3"}
	ledgers     = []string{"ledger-1", "ledger-2", "ledger-3"}
	podIPs      = map[string]string{"ledger-1": "172.28.0.41", "ledger-2": "172.28.0.42", "ledger-3": "172.28.0.43"}
)

const ntp2IP = "172.28.0.32"

// cluster is one compose deployment driven from outside: docker commands
// against its containers, gRPC clients to its servers.
type cluster struct {
	t       testing.TB
	compose []string // the compose command and its -p/-f arguments
	project string
	bin     string // host stillpoint binary (the CLI under test)
	ids     map[string]string
	clients map[string]pb.CoordinatorServiceClient
	conns   []*grpc.ClientConn
	env     []string

	mu      sync.Mutex
	stopped map[string]bool // services a fault keeps stopped on purpose
}

// expectDown sets the services ready() does not wait for (none: all).
func (c *cluster) expectDown(svcs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = map[string]bool{}
	for _, s := range svcs {
		c.stopped[s] = true
	}
}

func (c *cluster) isExpectedDown(svc string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped[svc]
}

func newCluster(t testing.TB, composeCmd, project, bin string) *cluster {
	file, err := filepath.Abs("../../deploy/docker/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	c := &cluster{
		t: t, project: project, bin: bin, ids: map[string]string{}, clients: map[string]pb.CoordinatorServiceClient{},
		compose: append(strings.Fields(composeCmd), "-p", project, "-f", file),
		env:     append(os.Environ(), "STILLPOINT_GOSSIP_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(key)),
	}
	for _, s := range servers {
		cc, err := grpcx.NewClient(serverAddrs[s], grpcx.TLS{})
		if err != nil {
			t.Fatal(err)
		}
		c.conns = append(c.conns, cc)
		c.clients[s] = pb.NewCoordinatorServiceClient(cc)
	}
	return c
}

// run runs a command with a timeout and returns its combined output.
func (c *cluster) run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = c.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

func (c *cluster) dc(timeout time.Duration, args ...string) (string, error) {
	return c.run(timeout, c.compose[0], append(append([]string(nil), c.compose[1:]...), args...)...)
}

func (c *cluster) docker(args ...string) (string, error) {
	return c.run(60*time.Second, "docker", args...)
}

// must fails the test on a docker error (the harness, not the system, broke).
func (c *cluster) must(out string, err error) string {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// up starts the deployment from a clean state and resolves container ids.
func (c *cluster) up() {
	c.t.Helper()
	_, _ = c.dc(3*time.Minute, "down", "-v", "--remove-orphans")
	if out, err := c.dc(5*time.Minute, "up", "-d"); err != nil {
		c.t.Fatalf("compose up (is `make compose-up`'s stack still running on 172.28.0.0/24? `make compose-down`): %v\n%s", err, out)
	}
	for _, svc := range []string{"server-1", "server-2", "server-3", "ledger-1", "ledger-2", "ledger-3", "auditor-1", "auditor-2",
		"agent-ledger-1", "agent-ledger-2", "agent-ledger-3", "agent-auditor-1", "agent-auditor-2", "ntp-1", "ntp-2", "ntp-3"} {
		id := strings.TrimSpace(c.must(c.dc(time.Minute, "ps", "-q", svc)))
		if id == "" {
			c.t.Fatalf("service %s has no container", svc)
		}
		c.ids[svc] = id
	}
}

// down removes everything the suite started.
func (c *cluster) down() {
	_, _ = c.docker("rm", "-f", c.project+"-ntp-2-falseticker")
	if _, err := c.dc(3*time.Minute, "down", "-v", "--remove-orphans"); err != nil {
		c.t.Logf("compose down: %v", err)
	}
	for _, cc := range c.conns {
		_ = cc.Close()
	}
}

// kill sends SIGKILL (or sig) to a service's container.
func (c *cluster) kill(svc string, sig string) error {
	_, err := c.docker("kill", "-s", sig, c.ids[svc])
	return err
}

func (c *cluster) start(svc string) error {
	_, err := c.docker("start", c.ids[svc])
	return err
}

func (c *cluster) running(svc string) bool {
	out, err := c.docker("inspect", "-f", "{{.State.Running}}", c.ids[svc])
	return err == nil && strings.TrimSpace(out) == "true"
}

// nsenter runs a host command (tc, iptables) in a service's network namespace.
func (c *cluster) nsenter(svc string, args ...string) error {
	out, err := c.docker("inspect", "-f", "{{.State.Pid}}", c.ids[svc])
	if err != nil {
		return err
	}
	pid := strings.TrimSpace(out)
	if _, err := strconv.Atoi(pid); err != nil || pid == "0" {
		return fmt.Errorf("%s: no pid (%q)", svc, pid)
	}
	_, err = c.run(30*time.Second, "nsenter", append([]string{"-t", pid, "-n"}, args...)...)
	return err
}

// iface names a service's network interface on the bridge (eth0, or
// eth1 and up after a disconnect and reconnect).
func (c *cluster) iface(svc string) (string, error) {
	out, err := c.docker("inspect", "-f", "{{.State.Pid}}", c.ids[svc])
	if err != nil {
		return "", err
	}
	links, err := c.run(30*time.Second, "nsenter", "-t", strings.TrimSpace(out), "-n", "ip", "-o", "link", "show")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(links, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if name != "lo" {
			return name, nil
		}
	}
	return "", fmt.Errorf("%s: no interface but lo: %s", svc, links)
}

// logs returns a container's whole log (stdout and stderr).
func (c *cluster) logs(svc string) ([]byte, error) {
	out, err := c.run(60*time.Second, "docker", "logs", c.ids[svc])
	return []byte(out), err
}

// leader asks every reachable server which leader it knows.
func (c *cluster) leader() string {
	for _, s := range servers {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.clients[s].GetServerInfo(ctx, &pb.GetServerInfoRequest{})
		cancel()
		if err == nil && info.GetLeaderId() != "" {
			return info.GetLeaderId()
		}
	}
	return ""
}

// leaderAmong waits until a server in alive reports a leader in alive.
func (c *cluster) leaderAmong(alive []string, within time.Duration) (string, bool) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, s := range alive {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			info, err := c.clients[s].GetServerInfo(ctx, &pb.GetServerInfoRequest{})
			cancel()
			if err == nil && contains(alive, info.GetLeaderId()) && info.GetRaftState() != "" {
				return info.GetLeaderId(), true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// op reads an operation from any server (forwarded to the leader).
func (c *cluster) op(id string) (*pb.Operation, error) {
	var errs []error
	for _, s := range servers {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		r, err := c.clients[s].GetOperation(ctx, &pb.GetOperationRequest{OpId: id})
		cancel()
		if err == nil {
			return r.GetOperation(), nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", s, err))
	}
	return nil, errors.Join(errs...)
}

// listOps lists the newest ledger operations.
func (c *cluster) listOps() ([]*pb.Operation, error) {
	var errs []error
	for _, s := range servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r, err := c.clients[s].ListOperations(ctx, &pb.ListOperationsRequest{Cluster: "ledger", Limit: 3})
		cancel()
		if err == nil {
			return r.GetOperations(), nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", s, err))
	}
	return nil, errors.Join(errs...)
}

// catalog lists the ledger restore points from the leader.
func (c *cluster) catalog() (map[string]bool, error) {
	var errs []error
	for _, s := range servers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := c.clients[s].ListRestorePoints(ctx, &pb.ListRestorePointsRequest{Cluster: "ledger", Limit: 100000})
		cancel()
		if err == nil {
			m := map[string]bool{}
			for _, rp := range r.GetRestorePoints() {
				m[rp.GetOpId()] = true
			}
			return m, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", s, err))
	}
	return nil, errors.Join(errs...)
}

// config reads the runtime config (lease).
func (c *cluster) config() (*pb.RuntimeConfig, error) {
	var errs []error
	for _, s := range servers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := c.clients[s].GetConfig(ctx, &pb.GetConfigRequest{})
		cancel()
		if err == nil {
			return r.GetConfig(), nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// addrs is the CLI's --addr: every server.
func addrs() string {
	var a []string
	for _, s := range servers {
		a = append(a, serverAddrs[s])
	}
	return strings.Join(a, ",")
}

// ready waits until every container runs, a leader is known and every
// Ledger node would be admitted (`stillpoint drift --cluster ledger`).
func (c *cluster) ready(within time.Duration) error {
	deadline := time.Now().Add(within)
	var last string
	for {
		ok := true
		for svc := range c.ids {
			if !c.isExpectedDown(svc) && !c.running(svc) {
				ok, last = false, svc+" not running"
				break
			}
		}
		if ok {
			out, err := c.run(20*time.Second, c.bin, "drift", "--cluster", "ledger", "--addr", addrs(), "--timeout", "3s")
			if err == nil {
				return nil
			}
			last = out
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %s", within, last)
		}
		time.Sleep(time.Second)
	}
}
