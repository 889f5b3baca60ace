package plan

import (
	"sort"
	"strings"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// The YAML and CLI spell enum values as lower-case words: the proto name
// without its prefix (DATABASE_KIND_POSTGRES is "postgres").

func word(full, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(full, prefix))
}

func words(names map[int32]string, prefix string) []string {
	var keys []int
	for k := range names {
		if k != 0 {
			keys = append(keys, int(k))
		}
	}
	sort.Ints(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, word(names[int32(k)], prefix))
	}
	return out
}

func parseWord(names map[string]int32, prefix, w string) (int32, bool) {
	if w == "" || strings.ToLower(w) != w {
		return 0, false
	}
	v, ok := names[prefix+strings.ToUpper(w)]
	return v, ok && v != 0
}

const (
	kindPrefix    = "DATABASE_KIND_"
	methodPrefix  = "RESTORE_METHOD_"
	onErrorPrefix = "HOOK_ON_ERROR_"
	missedPrefix  = "MISSED_RUN_POLICY_"
)

// KindName is a database kind's word ("postgres"); "" when unspecified.
func KindName(k pb.DatabaseKind) string {
	if k == 0 {
		return ""
	}
	return word(k.String(), kindPrefix)
}

// KindNames lists the database kinds' words.
func KindNames() []string { return words(pb.DatabaseKind_name, kindPrefix) }

// ParseKind reads a database kind's word.
func ParseKind(w string) (pb.DatabaseKind, bool) {
	v, ok := parseWord(pb.DatabaseKind_value, kindPrefix, w)
	return pb.DatabaseKind(v), ok
}

// MethodName is a restore method's word ("pitr"); "" when unspecified.
func MethodName(m pb.RestoreMethod) string {
	if m == 0 {
		return ""
	}
	return word(m.String(), methodPrefix)
}

// MethodNames lists the restore methods' words.
func MethodNames() []string { return words(pb.RestoreMethod_name, methodPrefix) }

// ParseMethod reads a restore method's word.
func ParseMethod(w string) (pb.RestoreMethod, bool) {
	v, ok := parseWord(pb.RestoreMethod_value, methodPrefix, w)
	return pb.RestoreMethod(v), ok
}

// OnErrorName is an on-error policy's word; unspecified is "abort".
func OnErrorName(o pb.HookOnError) string {
	if o == 0 {
		return "abort"
	}
	return word(o.String(), onErrorPrefix)
}

// OnErrorNames lists the on-error policies' words.
func OnErrorNames() []string { return words(pb.HookOnError_name, onErrorPrefix) }

// ParseOnError reads an on-error policy's word.
func ParseOnError(w string) (pb.HookOnError, bool) {
	v, ok := parseWord(pb.HookOnError_value, onErrorPrefix, w)
	return pb.HookOnError(v), ok
}

// MissedRunsName is a missed-run policy's word; "" when unspecified.
func MissedRunsName(m pb.MissedRunPolicy) string {
	if m == 0 {
		return ""
	}
	return word(m.String(), missedPrefix)
}

// MissedRunsNames lists the missed-run policies' words.
func MissedRunsNames() []string { return words(pb.MissedRunPolicy_name, missedPrefix) }

// ParseMissedRuns reads a missed-run policy's word.
func ParseMissedRuns(w string) (pb.MissedRunPolicy, bool) {
	v, ok := parseWord(pb.MissedRunPolicy_value, missedPrefix, w)
	return pb.MissedRunPolicy(v), ok
}
