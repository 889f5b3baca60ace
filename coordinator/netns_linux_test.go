package coordinator_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// netemNamespace is a network namespace joined to this one by a veth pair
// whose both ends delay every packet with tc netem: a server listening
// inside it (Enter) is reached from here over a path with real queueing
// delay and jitter, unlike loopback.
type netemNamespace struct {
	name, hostDev string
	hostIP, nsIP  string
}

// newNetemNamespace creates the namespace, the veth pair and a netem
// qdisc delay±jitter on each end (so a round trip takes about 2·delay);
// with both zero, no qdisc.
// It needs root, ip and tc (iproute2).
func newNetemNamespace(delay, jitter time.Duration) (*netemNamespace, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("needs root (euid %d)", os.Geteuid())
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s (iproute2) not found: %w", tool, err)
		}
	}
	id := os.Getpid()%10000*10 + int(time.Now().UnixNano()%10)
	ns := &netemNamespace{
		name:    fmt.Sprintf("spbench%d", id),
		hostDev: fmt.Sprintf("spb%da", id),
		hostIP:  fmt.Sprintf("10.203.%d.1", id%250),
		nsIP:    fmt.Sprintf("10.203.%d.2", id%250),
	}
	nsDev := fmt.Sprintf("spb%db", id)
	netem := func(dev string) []string {
		args := []string{"qdisc", "add", "dev", dev, "root", "netem", "delay", fmt.Sprintf("%dus", delay.Microseconds())}
		if jitter > 0 {
			args = append(args, fmt.Sprintf("%dus", jitter.Microseconds()))
		}
		return args
	}
	steps := [][]string{
		{"ip", "netns", "add", ns.name},
		{"ip", "link", "add", ns.hostDev, "type", "veth", "peer", "name", nsDev},
		{"ip", "link", "set", nsDev, "netns", ns.name},
		{"ip", "addr", "add", ns.hostIP + "/30", "dev", ns.hostDev},
		{"ip", "link", "set", ns.hostDev, "up"},
		{"ip", "netns", "exec", ns.name, "ip", "addr", "add", ns.nsIP + "/30", "dev", nsDev},
		{"ip", "netns", "exec", ns.name, "ip", "link", "set", nsDev, "up"},
		{"ip", "netns", "exec", ns.name, "ip", "link", "set", "lo", "up"},
		append([]string{"tc"}, netem(ns.hostDev)...),
		append([]string{"ip", "netns", "exec", ns.name, "tc"}, netem(nsDev)...),
	}
	if delay == 0 && jitter == 0 {
		steps = steps[:len(steps)-2]
	}
	for i, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			if i > 0 {
				ns.Close()
			}
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return ns, nil
}

// ServerAddr is a listen address inside the namespace (port 0: a free one).
func (ns *netemNamespace) ServerAddr() string { return ns.nsIP + ":0" }

// Enter runs f on an OS thread that has joined the namespace: sockets f
// opens live there for good. The thread is never handed back to the
// runtime (it exits with the goroutine), so no other goroutine runs in
// the namespace.
func (ns *netemNamespace) Enter(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread dies with this goroutine
		fd, err := unix.Open(filepath.Join("/var/run/netns", ns.name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- fmt.Errorf("open namespace %s: %w", ns.name, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("join namespace %s: %w", ns.name, err)
			return
		}
		done <- f()
	}()
	return <-done
}

// Close deletes the namespace, which removes the veth pair with it.
func (ns *netemNamespace) Close() {
	_ = exec.Command("ip", "netns", "del", ns.name).Run()
	_ = exec.Command("ip", "link", "del", ns.hostDev).Run()
}
