// Package chaos is the fault suite that runs the compose deployment
// (deploy/docker/compose.yaml) under real faults injected from outside the
// processes — docker kill/stop/start, network disconnects, tc netem and
// iptables inside a container's network namespace, NTP servers turned
// falsetickers — and checks every pause against oracles read from outside:
// the simulated nodes' logged paused-and-drained intervals and the
// coordinator's catalog. The driver is TestChaos (build tag chaos, `make
// chaos`); this file holds the oracles, which are pure functions tested
// without Docker.
package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Interval is one span during which a node's gate was closed and nothing
// was in flight, on the host clock (containers share the kernel clock).
// Open is set when the node logged the start but not (yet) the end; End is
// then the time the logs were read.
type Interval struct {
	Start, End time.Time
	Open       bool
}

// Duration of the interval.
func (iv Interval) Duration() time.Duration { return iv.End.Sub(iv.Start) }

// Contains reports whether t lies inside the interval.
func (iv Interval) Contains(t time.Time) bool { return !t.Before(iv.Start) && !t.After(iv.End) }

// logLine is the part of a simnode JSON log line the oracle reads.
type logLine struct {
	Msg           string `json:"msg"`
	NodeID        string `json:"node_id"`
	DrainedUnixNS int64  `json:"drained_unix_ns"`
	StartUnixNS   int64  `json:"start_unix_ns"`
	EndUnixNS     int64  `json:"end_unix_ns"`
}

// ParseIntervals rebuilds a node's paused-and-drained intervals from its
// logs ("paused and drained" opens one, "paused interval ended" closes it;
// other lines are skipped). An interval still open is returned with
// End = readAt and Open set. Intervals are sorted by start.
func ParseIntervals(logs []byte, readAt time.Time) []Interval {
	var out []Interval
	open := map[int64]bool{}
	sc := bufio.NewScanner(bytes.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var l logLine
		if json.Unmarshal(line, &l) != nil {
			continue
		}
		switch l.Msg {
		case "paused and drained":
			open[l.DrainedUnixNS] = true
		case "paused interval ended":
			delete(open, l.StartUnixNS)
			out = append(out, Interval{Start: time.Unix(0, l.StartUnixNS), End: time.Unix(0, l.EndUnixNS)})
		}
	}
	for start := range open {
		out = append(out, Interval{Start: time.Unix(0, start), End: readAt, Open: true})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// Window is a completed operation's restore window (true time).
type Window struct {
	OpID                string
	Start, End, Restore time.Time
	Targets             []string
}

// CheckWindow: the restore point (and the whole certified window) of a
// completed, not invalidated, operation lies inside one paused-and-drained
// interval of every target. Returns one message per violation.
func CheckWindow(w Window, intervals map[string][]Interval) []string {
	var v []string
	for _, node := range w.Targets {
		var holder *Interval
		for i, iv := range intervals[node] {
			if iv.Contains(w.Restore) {
				holder = &intervals[node][i]
				break
			}
		}
		switch {
		case holder == nil:
			v = append(v, fmt.Sprintf("%s: restore point %s of a completed op is in no paused-and-drained interval of %s (%s)",
				w.OpID, w.Restore.UTC().Format(time.RFC3339Nano), node, describe(intervals[node], w.Restore)))
		case !holder.Contains(w.Start) || !holder.Contains(w.End):
			v = append(v, fmt.Sprintf("%s: window %s..%s is not inside %s's paused interval %s..%s",
				w.OpID, w.Start.UTC().Format(time.RFC3339Nano), w.End.UTC().Format(time.RFC3339Nano), node,
				holder.Start.UTC().Format(time.RFC3339Nano), holder.End.UTC().Format(time.RFC3339Nano)))
		}
	}
	return v
}

// describe names the intervals nearest t, for a violation message.
func describe(ivs []Interval, t time.Time) string {
	if len(ivs) == 0 {
		return "no interval logged"
	}
	best := ivs[0]
	for _, iv := range ivs {
		if absDur(iv.Start.Sub(t)) < absDur(best.Start.Sub(t)) {
			best = iv
		}
	}
	return fmt.Sprintf("nearest %s..%s", best.Start.UTC().Format(time.RFC3339Nano), best.End.UTC().Format(time.RFC3339Nano))
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// Downtime is a span during which a node's agent was not running (killed,
// not yet restarted).
type Downtime struct{ From, To time.Time }

// CheckPausedLength: no interval is longer than lease + the agent's
// downtime overlapping it + slack, so never longer than lease + slack while
// the agent is alive. Returns violations and the longest interval seen.
func CheckPausedLength(node string, ivs []Interval, lease, slack time.Duration, down []Downtime) ([]string, time.Duration) {
	var v []string
	var longest time.Duration
	for _, iv := range ivs {
		d := iv.Duration()
		if d > longest {
			longest = d
		}
		var overlap time.Duration
		for _, dt := range down {
			from, to := maxTime(dt.From, iv.Start), minTime(dt.To, iv.End)
			if to.After(from) {
				overlap += to.Sub(from)
			}
		}
		if bound := lease + overlap + slack; d > bound {
			state := "ended"
			if iv.Open {
				state = "still open"
			}
			v = append(v, fmt.Sprintf("%s paused %v from %s (%s): longer than lease %v + agent downtime %v + slack %v",
				node, d.Round(time.Millisecond), iv.Start.UTC().Format(time.RFC3339Nano), state, lease,
				overlap.Round(time.Millisecond), slack))
		}
	}
	return v, longest
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// CheckResumedHold: an operation whose hold was driven by more than one
// leader ends at its original deadline: its last unpause is not later than
// the deadline + the time no leader could act (quorum loss) + slack — a
// new leader that restarted the hold would overshoot by a whole hold.
func CheckResumedHold(opID string, leaders int, deadline, lastUnpause time.Time, noLeader, slack time.Duration) []string {
	if leaders < 2 || deadline.IsZero() || lastUnpause.IsZero() {
		return nil
	}
	if late := lastUnpause.Sub(deadline); late > noLeader+slack {
		return []string{fmt.Sprintf("%s: resumed hold (%d leaders) unpaused %v after its deadline %s (allowed: %v without a leader + %v)",
			opID, leaders, late.Round(time.Millisecond), deadline.UTC().Format(time.RFC3339Nano), noLeader.Round(time.Millisecond), slack)}
	}
	return nil
}

// CheckCatalog: every restore point acknowledged as completed is still in
// the catalog. acked maps op id to the instant it was acknowledged.
func CheckCatalog(acked map[string]time.Time, catalog map[string]bool) []string {
	var v []string
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !catalog[id] {
			v = append(v, fmt.Sprintf("%s: acknowledged completed at %s, missing from the catalog", id,
				acked[id].UTC().Format(time.RFC3339Nano)))
		}
	}
	return v
}
