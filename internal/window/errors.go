package window

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
)

// Error classes; every error from Compute wraps exactly one.
var (
	// ErrInvalidInput: the readings or options cannot be used at all.
	ErrInvalidInput = errors.New("invalid window inputs")
	// ErrInvalidWindow: the readings are fine but do not prove a long
	// enough interval during which every target was paused.
	ErrInvalidWindow = errors.New("invalid restore window")
)

// InvalidWindowError says why a window was rejected: which nodes' readings
// set each edge, with the figures.
type InvalidWindowError struct {
	// Window as computed: Start, End, Width, StartNode, EndNode are set;
	// RestorePoint and Uncertainty are zero.
	Window Window
	// StartReading is StartNode's ack reading, EndReading EndNode's
	// unpause reading.
	StartReading, EndReading Reading
	MinWidth                 time.Duration
	TargetClockBound         time.Duration
	// Overflow: the window is wider than a time.Duration can hold, which
	// only broken readings produce.
	Overflow bool
}

func (e *InvalidWindowError) Error() string {
	w := e.Window
	var b strings.Builder
	if e.Overflow {
		b.WriteString("window is wider than the largest duration (292 years): readings are implausible")
	} else {
		fmt.Fprintf(&b, "window is %s wide", timefmt.Precise(w.Width))
	}
	fmt.Fprintf(&b, ": start %s set by %s (ack %s + θ %s + ε %s",
		timefmt.UTC(w.Start), w.StartNode, timefmt.UTC(e.StartReading.Local),
		timefmt.Precise(e.StartReading.Offset), timefmt.Precise(e.StartReading.Bound))
	if e.TargetClockBound > 0 {
		fmt.Fprintf(&b, " + β %s", timefmt.Precise(e.TargetClockBound))
	}
	fmt.Fprintf(&b, "), end %s set by %s (unpause %s + θ %s − ε %s",
		timefmt.UTC(w.End), w.EndNode, timefmt.UTC(e.EndReading.Local),
		timefmt.Precise(e.EndReading.Offset), timefmt.Precise(e.EndReading.Bound))
	if e.TargetClockBound > 0 {
		fmt.Fprintf(&b, " − β %s", timefmt.Precise(e.TargetClockBound))
	}
	b.WriteString("); need ")
	if e.MinWidth > 0 {
		fmt.Fprintf(&b, "≥ %s", timefmt.Precise(e.MinWidth))
	} else {
		b.WriteString("> 0")
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalidWindow) hold.
func (e *InvalidWindowError) Unwrap() error { return ErrInvalidWindow }

// validate reports every problem with the inputs in one error.
func validate(targets []Target, opts Options) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	problems = append(problems, opts.problems()...)
	if len(targets) == 0 {
		add("no targets: a window needs at least one node's readings")
	}
	for i, t := range targets {
		name := t.Node
		if name == "" {
			add("target #%d has no node name", i+1)
			name = fmt.Sprintf("target #%d", i+1)
		}
		if j := firstIndex(targets[:i], t.Node); t.Node != "" && j >= 0 {
			add("node %s listed twice (targets #%d and #%d)", t.Node, j+1, i+1)
		}
		for _, r := range []struct {
			what string
			r    Reading
		}{{"ack", t.Ack}, {"unpause", t.Unpause}} {
			if r.r.Local.IsZero() {
				add("node %s: %s reading has no local time", name, r.what)
			}
			if r.r.Bound < 0 {
				add("node %s: %s error bound ε is negative (%s)", name, r.what, timefmt.Precise(r.r.Bound))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidInput, strings.Join(problems, "; "))
}

// Validate reports every problem with the options.
func (o Options) Validate() error {
	if p := o.problems(); len(p) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidInput, strings.Join(p, "; "))
	}
	return nil
}

func (o Options) problems() []string {
	var problems []string
	if o.MinWidth < 0 {
		problems = append(problems, fmt.Sprintf("minimum width is negative (%s)", timefmt.Precise(o.MinWidth)))
	}
	if o.TargetClockBound < 0 {
		problems = append(problems, fmt.Sprintf("target clock bound β is negative (%s)", timefmt.Precise(o.TargetClockBound)))
	}
	return problems
}

// firstIndex is the index of the first target named node, or −1. Target
// lists are small (a cluster's nodes), so a scan beats a map.
func firstIndex(targets []Target, node string) int {
	for i, t := range targets {
		if t.Node == node {
			return i
		}
	}
	return -1
}
