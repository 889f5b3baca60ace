package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

type level int

func (l *level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low":
		*l = 1
	case "high":
		*l = 2
	default:
		return fmt.Errorf("level %q: want low or high", b)
	}
	return nil
}

type common struct {
	Cluster string `yaml:"cluster" flag:"cluster"`
}

type gossipSection struct {
	Bind string `yaml:"bind" flag:"gossip-bind"`
	Key  string `yaml:"key"`
}

type hook struct {
	Cmd     string        `yaml:"cmd"`
	Timeout time.Duration `yaml:"timeout"`
}

type testConfig struct {
	common   `yaml:",inline"`
	Name     string            `yaml:"name" flag:"name"`
	Timeout  time.Duration     `yaml:"timeout" flag:"timeout"`
	Port     int               `yaml:"port" flag:"port"`
	Seeds    []string          `yaml:"seeds" flag:"seeds"`
	Verbose  bool              `yaml:"verbose" flag:"verbose"`
	Drift    float64           `yaml:"drift" flag:"drift"`
	Level    level             `yaml:"level" flag:"level"`
	Gossip   gossipSection     `yaml:"gossip"`
	Hooks    []hook            `yaml:"hooks"`
	Labels   map[string]string `yaml:"labels"`
	Untagged string
	Ignored  string `yaml:"-"`
}

func defaults() testConfig {
	return testConfig{Name: "default", Timeout: 5 * time.Second, Port: 1, Drift: 50}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stillpoint.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad(t *testing.T) {
	const full = `
name: agent-1
timeout: 1m30s
port: 7946
seeds: [a:1, b:2]
verbose: true
drift: 12.5
level: high
cluster: ledger
untagged: u
gossip:
  bind: 127.0.0.1
  key: k
hooks:
  - cmd: backup.sh
    timeout: 10m
labels:
  zone: a
`
	want := testConfig{
		common: common{Cluster: "ledger"}, Name: "agent-1", Timeout: 90 * time.Second, Port: 7946,
		Seeds: []string{"a:1", "b:2"}, Verbose: true, Drift: 12.5, Level: 2, Untagged: "u",
		Gossip: gossipSection{Bind: "127.0.0.1", Key: "k"},
		Hooks:  []hook{{Cmd: "backup.sh", Timeout: 10 * time.Minute}},
		Labels: map[string]string{"zone": "a"},
	}
	tests := []struct {
		name    string
		body    string
		want    testConfig
		wantErr []string // substrings; file:line is checked with "FILE"
		is      error
	}{
		{name: "full", body: full, want: want},
		{name: "empty keeps defaults", body: "", want: defaults()},
		{name: "comments only keep defaults", body: "# nothing\n", want: defaults()},
		{name: "partial keeps other defaults", body: "port: 9\n", want: func() testConfig { c := defaults(); c.Port = 9; return c }()},
		{name: "anchors and merge", body: "gossip: &g\n  bind: x\nhooks:\n  - &h {cmd: a}\n  - <<: *h\n    timeout: 1s\n",
			want: func() testConfig {
				c := defaults()
				c.Gossip.Bind = "x"
				c.Hooks = []hook{{Cmd: "a"}, {Cmd: "a", Timeout: time.Second}}
				return c
			}()},
		{name: "unknown keys all reported", body: "name: x\ntimout: 1s\ngossip:\n  bnd: y\nhooks:\n  - cmd: a\n    retries: 3\n",
			wantErr: []string{`FILE:2:1: unknown key "timout"`, `FILE:4:3: unknown key "gossip.bnd" (known keys: bind, key)`, `FILE:7:5: unknown key "hooks[0].retries"`},
			is:      ErrUnknownKey},
		{name: "unknown key under merge", body: "base: &b {bind: 1, nope: 2}\n", wantErr: []string{`FILE:1:1: unknown key "base"`}, is: ErrUnknownKey},
		{name: "yaml:- field is unknown", body: "ignored: x\n", wantErr: []string{`unknown key "ignored"`}, is: ErrUnknownKey},
		{name: "bare number duration", body: "timeout: 30\n", wantErr: []string{"FILE:1: cannot unmarshal !!int `30` into time.Duration", `like "30s"`}, is: ErrInvalid},
		{name: "type errors all reported", body: "timeout: soon\nport: many\n", wantErr: []string{"FILE:1:", "FILE:2:", "into int"}, is: ErrInvalid},
		{name: "text unmarshaler error", body: "level: medium\n", wantErr: []string{`level "medium": want low or high`}},
		{name: "syntax error", body: "name: a\n  port: [\n", wantErr: []string{"FILE:2: mapping values are not allowed"}},
		{name: "duplicate key", body: "port: 1\nport: 2\n", wantErr: []string{`FILE:2: mapping key "port" already defined at line 1`}},
		{name: "two documents", body: "port: 1\n---\nport: 2\n", wantErr: []string{"more than one YAML document"}},
		{name: "not a mapping", body: "- a\n", wantErr: []string{"cannot unmarshal !!seq"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.body)
			got := defaults()
			err := Load(path, &got)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("Load:\n got %+v\nwant %+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load succeeded: %+v", got)
			}
			for _, w := range tt.wantErr {
				w = strings.ReplaceAll(w, "FILE", path)
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(err, %v) = false: %v", tt.is, err)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	var c testConfig
	if err := Load(filepath.Join(t.TempDir(), "missing.yaml"), &c); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
	path := writeFile(t, "port: 1\n")
	for _, dst := range []any{nil, c, new(int), (*testConfig)(nil)} {
		if err := Load(path, dst); err == nil || !strings.Contains(err.Error(), "pointer to a struct") {
			t.Errorf("Load into %T: %v, want a destination error", dst, err)
		}
	}
}

// newCmd builds a command with one flag per testConfig field and runs
// Resolve in it.
func runResolve(t *testing.T, args []string, dst *testConfig) error {
	t.Helper()
	cmd := &cobra.Command{
		Use:           "agent",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return Resolve(cmd, "config", dst)
		},
	}
	f := cmd.Flags()
	f.String("config", "", "config file")
	f.String("name", "", "")
	f.Duration("timeout", 0, "")
	f.Int("port", 0, "")
	f.StringSlice("seeds", nil, "")
	f.Bool("verbose", false, "")
	f.Float64("drift", 0, "")
	f.String("level", "", "")
	f.String("cluster", "", "")
	f.String("gossip-bind", "", "")
	cmd.SetArgs(args)
	return cmd.Execute()
}

func TestResolvePrecedence(t *testing.T) {
	file := writeFile(t, "timeout: 2s\nport: 2\ncluster: file\ngossip: {bind: file}\n")
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(testConfig) error
	}{
		{"defaults only", nil, nil, func(c testConfig) error {
			return eq(c.Timeout, 5*time.Second, c.Port, 1)
		}},
		{"file over defaults", []string{"--config", file}, nil, func(c testConfig) error {
			return eq(c.Timeout, 2*time.Second, c.Port, 2, c.Name, "default")
		}},
		{"env over file", []string{"--config", file}, map[string]string{"STILLPOINT_TIMEOUT": "3s", "STILLPOINT_GOSSIP_BIND": "env"},
			func(c testConfig) error { return eq(c.Timeout, 3*time.Second, c.Port, 2, c.Gossip.Bind, "env") }},
		{"flag over env", []string{"--config", file, "--timeout", "4s", "--gossip-bind=flag"}, map[string]string{"STILLPOINT_TIMEOUT": "3s", "STILLPOINT_GOSSIP_BIND": "env"},
			func(c testConfig) error {
				return eq(c.Timeout, 4*time.Second, c.Gossip.Bind, "flag", c.Cluster, "file")
			}},
		{"config path from env", nil, map[string]string{"STILLPOINT_CONFIG": file},
			func(c testConfig) error { return eq(c.Port, 2, c.Cluster, "file") }},
		{"every kind from env", nil, map[string]string{
			"STILLPOINT_NAME": "n", "STILLPOINT_SEEDS": "a:1,b:2", "STILLPOINT_VERBOSE": "true",
			"STILLPOINT_DRIFT": "7.5", "STILLPOINT_LEVEL": "low", "STILLPOINT_CLUSTER": "env", "STILLPOINT_PORT": "0x10"},
			func(c testConfig) error {
				return eq(c.Name, "n", fmt.Sprint(c.Seeds), "[a:1 b:2]", c.Verbose, true, c.Drift, 7.5, c.Level, level(1), c.Cluster, "env", c.Port, 16)
			}},
		{"explicit zero flag beats file", []string{"--config", file, "--port=0", "--cluster="}, nil,
			func(c testConfig) error { return eq(c.Port, 0, c.Cluster, "") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c := defaults()
			if err := runResolve(t, tt.args, &c); err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if err := tt.check(c); err != nil {
				t.Fatalf("%v (config %+v)", err, c)
			}
		})
	}
}

func TestResolveReportsEveryProblem(t *testing.T) {
	file := writeFile(t, "port: 1\nbogus: 2\n")
	t.Setenv("STILLPOINT_PORT", "eighty")
	t.Setenv("STILLPOINT_VERBOSE", "maybe")
	c := defaults()
	err := runResolve(t, []string{"--config", file, "--level", "medium"}, &c)
	for _, w := range []string{
		`environment STILLPOINT_PORT="eighty" (flag --port)`,
		`environment STILLPOINT_VERBOSE="maybe" (flag --verbose)`,
		`unknown key "bogus"`,
		`flag --level="medium": level "medium": want low or high`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error does not report %q:\n%v", w, err)
		}
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false")
	}
}

func TestResolveUnknownKeyStaysMatchable(t *testing.T) {
	file := writeFile(t, "bogus: 2\n")
	c := defaults()
	if err := runResolve(t, []string{"--config", file}, &c); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v, want ErrUnknownKey", err)
	}
}

func TestEnvName(t *testing.T) {
	tests := map[string]string{
		"config":             "STILLPOINT_CONFIG",
		"gossip-bind":        "STILLPOINT_GOSSIP_BIND",
		"max-drift-ppm":      "STILLPOINT_MAX_DRIFT_PPM",
		"already_underscore": "STILLPOINT_ALREADY_UNDERSCORE",
	}
	for flag, want := range tests {
		if got := EnvName(EnvPrefix, flag); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", flag, got, want)
		}
	}
}

func TestApplyFlagsRejectsBadDestination(t *testing.T) {
	cmd := &cobra.Command{}
	if err := ApplyFlags(cmd.Flags(), testConfig{}); err == nil {
		t.Fatal("ApplyFlags accepted a non-pointer")
	}
}

func TestProblems(t *testing.T) {
	var p Problems
	if p.Err() != nil {
		t.Fatal("empty Problems is an error")
	}
	p.Addf("name: must not be empty")
	if got := p.Err().Error(); got != "invalid configuration: name: must not be empty" {
		t.Errorf("one problem: %q", got)
	}
	var nested Problems
	nested.Addf("bind_port: -1 out of range")
	nested.Addf("secret_key: 3 bytes")
	p.Merge("gossip.", nested.Err())
	p.Merge("tls.", errors.New("cert: no such file"))
	p.Merge("ignored.", nil)
	want := "invalid configuration (4 problems):\n  name: must not be empty\n  gossip.bind_port: -1 out of range\n  gossip.secret_key: 3 bytes\n  tls.cert: no such file"
	err := p.Err()
	if err.Error() != want {
		t.Errorf("got:\n%s\nwant:\n%s", err, want)
	}
	if !errors.Is(fmt.Errorf("agent: %w", err), ErrInvalid) {
		t.Error("wrapped Problems does not match ErrInvalid")
	}
}

// eq compares got/want pairs.
func eq(pairs ...any) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if !reflect.DeepEqual(pairs[i], pairs[i+1]) {
			return fmt.Errorf("pair %d: got %v (%T), want %v (%T)", i/2, pairs[i], pairs[i], pairs[i+1], pairs[i+1])
		}
	}
	return nil
}
