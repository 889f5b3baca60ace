package fsm

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// DefaultRuntimeConfig is the runtime config of a fresh cluster.
func DefaultRuntimeConfig() *pb.RuntimeConfig {
	return &pb.RuntimeConfig{
		MaxErrorBoundNs:     int64(10 * time.Millisecond),
		MaxDriftNs:          int64(100 * time.Millisecond),
		LeaseNs:             int64(15 * time.Second),
		MarginNs:            int64(time.Millisecond),
		MinWindowNs:         int64(time.Millisecond),
		MaxPauseWaitNs:      int64(10 * time.Second),
		TargetClockBoundNs:  0,
		AlarmWarningRatio:   DefaultAlarmWarningRatio,
		AlarmForNs:          int64(DefaultAlarmFor),
		AlarmClearForNs:     int64(DefaultAlarmClearFor),
		AlarmRetentionNs:    int64(DefaultAlarmRetention),
		AlarmEvalIntervalNs: int64(DefaultAlarmEvalInterval),
		MaxHoldNs:           int64(DefaultMaxHold),
	}
}

// The maximum hold of a pause held until unpaused: its default (and the
// value of a config stored before the field existed) and its bounds.
const (
	DefaultMaxHold = time.Hour
	minMaxHold     = time.Second
	maxMaxHold     = 24 * time.Hour
)

// MaxHold is c's maximum hold of a pause held until unpaused.
func MaxHold(c *pb.RuntimeConfig) time.Duration {
	if h := c.GetMaxHoldNs(); h > 0 {
		return time.Duration(h)
	}
	return DefaultMaxHold
}

// ValidateRuntimeConfig reports every problem with c, joined, each wrapping
// ErrInvalidConfig; nil when c is usable.
func ValidateRuntimeConfig(c *pb.RuntimeConfig) error {
	if c == nil {
		return fmt.Errorf("%w: config is missing", ErrInvalidConfig)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	positive := []struct {
		name string
		v    int64
	}{
		{"max_error_bound_ns", c.GetMaxErrorBoundNs()},
		{"max_drift_ns", c.GetMaxDriftNs()},
		{"lease_ns", c.GetLeaseNs()},
		{"min_window_ns", c.GetMinWindowNs()},
		{"max_pause_wait_ns", c.GetMaxPauseWaitNs()},
	}
	for _, p := range positive {
		if p.v <= 0 {
			bad("%s is %d (%s); it must be positive", p.name, p.v, time.Duration(p.v))
		}
	}
	if w, l := c.GetMaxPauseWaitNs(), c.GetLeaseNs(); w > 0 && l > 0 && w >= l {
		bad("max_pause_wait_ns %s must be shorter than lease_ns %s: the lease would run out while a node drains", time.Duration(w), time.Duration(l))
	}
	if c.GetMarginNs() < 0 {
		bad("margin_ns is %d; it must not be negative", c.GetMarginNs())
	}
	if c.GetTargetClockBoundNs() < 0 {
		bad("target_clock_bound_ns is %d; it must not be negative", c.GetTargetClockBoundNs())
	}
	validateAlarmConfig(c, bad)
	if h := c.GetMaxHoldNs(); h != 0 && (h < int64(minMaxHold) || h > int64(maxMaxHold)) {
		bad("max_hold_ns is %d (%s); it must be within %s..%s (0: the default %s)", h, time.Duration(h), minMaxHold, maxMaxHold, DefaultMaxHold)
	}
	if c.GetLeaseNs() > 0 && c.GetLeaseNs() < int64(time.Second) {
		bad("lease_ns is %s; below 1s a lease cannot be renewed reliably", time.Duration(c.GetLeaseNs()))
	}
	return errors.Join(errs...)
}

// CheckRetiredFields refuses a config that sets a retired field: the API
// edge calls it before proposing a config. (Apply only strips retired
// fields, so an old log entry that set one replays the same everywhere.)
func CheckRetiredFields(c *pb.RuntimeConfig) error {
	//lint:ignore SA1019 checking that the retired field is empty
	if v := c.GetAlarmErrorBoundNs(); v != 0 {
		return fmt.Errorf("%w: alarm_error_bound_ns (%s) is retired: the error-bound warning is alarm_warning_ratio x max_error_bound_ns and the critical alarm fires above max_error_bound_ns, where admission refuses; leave alarm_error_bound_ns 0",
			ErrInvalidConfig, time.Duration(v))
	}
	//lint:ignore SA1019 checking that the retired field is empty
	em := c.GetExpectedMembers()
	if len(em) == 0 {
		return nil
	}
	clusters := make([]string, 0, len(em))
	for cl := range em {
		clusters = append(clusters, cl)
	}
	sort.Strings(clusters)
	return fmt.Errorf("%w: expected_members (set for %s) is retired: a cluster's nodes are its roster — every agent that ever joined stays on it until `stillpoint members remove NODE` — so leave expected_members empty",
		ErrInvalidConfig, strings.Join(clusters, ", "))
}

// stripRetired clears retired fields from a config about to be stored.
func stripRetired(c *pb.RuntimeConfig) {
	//lint:ignore SA1019 clearing the retired field
	c.ExpectedMembers = nil
	//lint:ignore SA1019 clearing the retired field
	c.AlarmErrorBoundNs = 0
}

// describeConfigChange lists the fields that differ, for the audit log.
func describeConfigChange(old, cur *pb.RuntimeConfig) string {
	var parts []string
	fields := cur.ProtoReflect().Descriptor().Fields()
	o, n := old.ProtoReflect(), cur.ProtoReflect()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		ov, nv := o.Get(fd), n.Get(fd)
		if fd.IsMap() {
			if !proto.Equal(wrapMap(old), wrapMap(cur)) {
				parts = append(parts, string(fd.Name())+" changed")
			}
			continue
		}
		if ov.Equal(nv) {
			continue
		}
		if fd.Kind() == protoreflect.Int64Kind && strings.HasSuffix(string(fd.Name()), "_ns") {
			parts = append(parts, fmt.Sprintf("%s %s -> %s", fd.Name(), time.Duration(ov.Int()), time.Duration(nv.Int())))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %v -> %v", fd.Name(), ov.Interface(), nv.Interface()))
	}
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, "; ")
}

// wrapMap isolates the map fields so proto.Equal compares only them.
func wrapMap(c *pb.RuntimeConfig) *pb.RuntimeConfig {
	//lint:ignore SA1019 the only map field, retired but still compared
	return &pb.RuntimeConfig{ExpectedMembers: c.GetExpectedMembers()}
}
