package plan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// The YAML form of a plan (what `stillpoint backup plan set -f` reads and
// `get -o yaml` prints). Keys are the proto's field names, durations are
// strings with units ("5s", "720h"), enums are lower-case words. Unknown
// keys are errors, with their line.

type yamlPlan struct {
	Name             string         `yaml:"name"`
	Clusters         []string       `yaml:"clusters,omitempty"`
	MinHold          duration       `yaml:"min_hold,omitempty"`
	Groups           []yamlGroup    `yaml:"groups,omitempty"`
	After            []yamlHook     `yaml:"after,omitempty"`
	Databases        []yamlDatabase `yaml:"databases,omitempty"`
	Schedule         string         `yaml:"schedule,omitempty"`
	ScheduleTimeZone string         `yaml:"schedule_time_zone,omitempty"`
	MissedRuns       enumWord       `yaml:"missed_runs,omitempty"`
	Retention        *yamlRetention `yaml:"retention,omitempty"`
	DeleteHook       *yamlHookName  `yaml:"delete_hook,omitempty"`
}

type yamlGroup struct {
	Name  string     `yaml:"name"`
	After []string   `yaml:"after,omitempty"`
	Hooks []yamlHook `yaml:"hooks"`
}

type yamlHook struct {
	Agent   string   `yaml:"agent"`
	Hook    string   `yaml:"hook"`
	OnError enumWord `yaml:"on_error,omitempty"`
}

type yamlHookName struct {
	Agent string `yaml:"agent"`
	Hook  string `yaml:"hook"`
}

type yamlDatabase struct {
	Name     string        `yaml:"name"`
	Service  string        `yaml:"service"`
	Kind     enumWord      `yaml:"kind"`
	Method   enumWord      `yaml:"method"`
	TimeZone string        `yaml:"time_zone,omitempty"`
	Hook     *yamlHookName `yaml:"hook,omitempty"`
}

type yamlRetention struct {
	KeepLast int32    `yaml:"keep_last,omitempty"`
	MaxAge   duration `yaml:"max_age,omitempty"`
}

// keysOf names the keys each YAML type accepts, for unknown-key errors.
var keysOf = map[string]string{
	"yamlPlan":      "name, clusters, min_hold, groups, after, databases, schedule, schedule_time_zone, missed_runs, retention, delete_hook",
	"yamlGroup":     "name, after, hooks",
	"yamlHook":      "agent, hook, on_error",
	"yamlHookName":  "agent, hook",
	"yamlDatabase":  "name, service, kind, method, time_zone, hook",
	"yamlRetention": "keep_last, max_age",
}

var whatOf = map[string]string{
	"yamlPlan": "a plan", "yamlGroup": "a group", "yamlHook": "a hook", "yamlHookName": "a database's or delete hook",
	"yamlDatabase": "a database", "yamlRetention": "retention",
}

// duration is a time.Duration written with units.
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return fmt.Errorf("line %d: %q is not a duration: write it with units, e.g. \"5s\", \"90m\", \"720h\"", n.Line, n.Value)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration: write it with units, e.g. \"5s\", \"90m\", \"720h\"", n.Line, n.Value)
	}
	*d = duration(v)
	return nil
}

func (d duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func (d duration) IsZero() bool { return d == 0 }

// enumWord is an enum's lower-case word; Decode checks it, with its line.
type enumWord struct {
	Word string
	Line int
}

func (w *enumWord) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a word", n.Line)
	}
	*w = enumWord{Word: n.Value, Line: n.Line}
	return nil
}

func (w enumWord) MarshalYAML() (any, error) { return w.Word, nil }

func (w enumWord) IsZero() bool { return w.Word == "" }

var unknownFieldRE = regexp.MustCompile(`field (\S+) not found in type plan\.(\w+)`)

// Decode reads a plan from YAML strictly: one document, no unknown keys,
// durations with units, enum words in lower case. Errors carry line
// numbers. It does not Validate.
func Decode(b []byte) (*pb.BackupPlan, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var y yamlPlan
	if err := dec.Decode(&y); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("plan file is empty")
		}
		return nil, rewriteYAMLError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("plan file holds more than one YAML document (one plan per file)")
	}
	return y.toProto()
}

// rewriteYAMLError turns yaml.v3's Go type names into what a plan author
// can act on.
func rewriteYAMLError(err error) error {
	msg := err.Error()
	msg = unknownFieldRE.ReplaceAllStringFunc(msg, func(m string) string {
		s := unknownFieldRE.FindStringSubmatch(m)
		keys, ok := keysOf[s[2]]
		if !ok {
			return m
		}
		return fmt.Sprintf("unknown key %q in %s (it takes: %s)", s[1], whatOf[s[2]], keys)
	})
	msg = strings.ReplaceAll(msg, "yaml: unmarshal errors:\n", "")
	return fmt.Errorf("plan file: %s", msg)
}

func (y *yamlPlan) toProto() (*pb.BackupPlan, error) {
	var bad []string
	p := &pb.BackupPlan{
		Name: y.Name, Clusters: y.Clusters, Schedule: y.Schedule, ScheduleTimeZone: y.ScheduleTimeZone,
		MinHoldMs: time.Duration(y.MinHold).Milliseconds(),
	}
	if y.MinHold != 0 && time.Duration(y.MinHold)%time.Millisecond != 0 {
		bad = append(bad, fmt.Sprintf("min_hold %v: use whole milliseconds", time.Duration(y.MinHold)))
	}
	onError := func(w enumWord) pb.HookOnError {
		if w.Word == "" {
			return pb.HookOnError_HOOK_ON_ERROR_ABORT
		}
		v, ok := ParseOnError(w.Word)
		if !ok {
			bad = append(bad, fmt.Sprintf("line %d: on_error %q is not one of: %s", w.Line, w.Word, strings.Join(OnErrorNames(), ", ")))
		}
		return v
	}
	for _, g := range y.Groups {
		pg := &pb.HookGroup{Name: g.Name, After: g.After}
		for _, h := range g.Hooks {
			pg.Hooks = append(pg.Hooks, &pb.HookRef{Agent: h.Agent, Hook: h.Hook, OnError: onError(h.OnError)})
		}
		p.Groups = append(p.Groups, pg)
	}
	for _, h := range y.After {
		p.After = append(p.After, &pb.HookRef{Agent: h.Agent, Hook: h.Hook, OnError: onError(h.OnError)})
	}
	for _, d := range y.Databases {
		pd := &pb.PlanDatabase{Name: d.Name, Service: d.Service, TimeZone: d.TimeZone}
		if d.Kind.Word != "" {
			k, ok := ParseKind(d.Kind.Word)
			if !ok {
				bad = append(bad, fmt.Sprintf("line %d: kind %q is not one of: %s", d.Kind.Line, d.Kind.Word, strings.Join(KindNames(), ", ")))
			}
			pd.Kind = k
		}
		if d.Method.Word != "" {
			m, ok := ParseMethod(d.Method.Word)
			if !ok {
				bad = append(bad, fmt.Sprintf("line %d: method %q is not one of: %s", d.Method.Line, d.Method.Word, strings.Join(MethodNames(), ", ")))
			}
			pd.Method = m
		}
		if d.Hook != nil {
			pd.Hook = &pb.HookRef{Agent: d.Hook.Agent, Hook: d.Hook.Hook}
		}
		p.Databases = append(p.Databases, pd)
	}
	if y.MissedRuns.Word != "" {
		m, ok := ParseMissedRuns(y.MissedRuns.Word)
		if !ok {
			bad = append(bad, fmt.Sprintf("line %d: missed_runs %q is not one of: %s", y.MissedRuns.Line, y.MissedRuns.Word, strings.Join(MissedRunsNames(), ", ")))
		}
		p.MissedRuns = m
	}
	if r := y.Retention; r != nil {
		p.Retention = &pb.Retention{KeepLast: r.KeepLast, MaxAgeMs: time.Duration(r.MaxAge).Milliseconds()}
		if r.MaxAge != 0 && time.Duration(r.MaxAge)%time.Millisecond != 0 {
			bad = append(bad, fmt.Sprintf("retention.max_age %v: use whole milliseconds", time.Duration(r.MaxAge)))
		}
	}
	if d := y.DeleteHook; d != nil {
		p.DeleteHook = &pb.HookRef{Agent: d.Agent, Hook: d.Hook}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("plan file:\n  %s", strings.Join(bad, "\n  "))
	}
	return p, nil
}

// Encode renders p as the YAML Decode reads (the FSM's stamps are left
// out: they are not part of what an operator sets).
func Encode(p *pb.BackupPlan) ([]byte, error) {
	y := yamlPlan{
		Name: p.GetName(), Clusters: p.GetClusters(), Schedule: p.GetSchedule(), ScheduleTimeZone: p.GetScheduleTimeZone(),
		MinHold:    duration(time.Duration(p.GetMinHoldMs()) * time.Millisecond),
		MissedRuns: enumWord{Word: MissedRunsName(p.GetMissedRuns())},
	}
	for _, g := range p.GetGroups() {
		yg := yamlGroup{Name: g.GetName(), After: g.GetAfter(), Hooks: []yamlHook{}}
		for _, h := range g.GetHooks() {
			yg.Hooks = append(yg.Hooks, yamlHook{Agent: h.GetAgent(), Hook: h.GetHook(), OnError: enumWord{Word: OnErrorName(h.GetOnError())}})
		}
		y.Groups = append(y.Groups, yg)
	}
	for _, h := range p.GetAfter() {
		y.After = append(y.After, yamlHook{Agent: h.GetAgent(), Hook: h.GetHook(), OnError: enumWord{Word: OnErrorName(h.GetOnError())}})
	}
	for _, d := range p.GetDatabases() {
		yd := yamlDatabase{Name: d.GetName(), Service: d.GetService(), TimeZone: d.GetTimeZone(),
			Kind: enumWord{Word: KindName(d.GetKind())}, Method: enumWord{Word: MethodName(d.GetMethod())}}
		if h := d.GetHook(); h != nil {
			yd.Hook = &yamlHookName{Agent: h.GetAgent(), Hook: h.GetHook()}
		}
		y.Databases = append(y.Databases, yd)
	}
	if r := p.GetRetention(); r != nil {
		y.Retention = &yamlRetention{KeepLast: r.GetKeepLast(), MaxAge: duration(time.Duration(r.GetMaxAgeMs()) * time.Millisecond)}
	}
	if h := p.GetDeleteHook(); h != nil {
		y.DeleteHook = &yamlHookName{Agent: h.GetAgent(), Hook: h.GetHook()}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&y); err != nil {
		return nil, fmt.Errorf("encode plan %s: %w", p.GetName(), err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
