package hook

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/config"
)

func TestValidateGood(t *testing.T) {
	defs := []Definition{
		{Name: "pg-dump", Command: "/usr/local/bin/pg-dump-hook", Timeout: 10 * time.Minute, Dir: "/var/backups",
			Env: map[string]string{"PGHOST": "localhost"}},
		{Name: "snapshot.v2_x", Command: "nodetool", Args: []string{"snapshot"}, Timeout: time.Second},
	}
	if err := Validate(defs); err != nil {
		t.Fatal(err)
	}
	if err := Validate(nil); err != nil {
		t.Fatal(err)
	}
}

// TestValidateEveryProblem: every problem is reported at once, each
// naming the hook's index, name and field.
func TestValidateEveryProblem(t *testing.T) {
	defs := []Definition{
		{Name: "", Command: "/bin/true", Timeout: time.Second},                       // 0
		{Name: "Bad Name", Command: "/bin/true", Timeout: time.Second},               // 1
		{Name: "pg-dump", Command: "/bin/true", Timeout: 0},                          // 2
		{Name: "pg-dump", Command: "", Timeout: time.Second},                         // 3
		{Name: "rel", Command: "bin/dump.sh", Dir: "backups", Timeout: -time.Second}, // 4
		{Name: "env", Command: "/bin/true", Timeout: time.Second,
			Env: map[string]string{"STILLPOINT_OP_ID": "x", "1BAD": "y"}}, // 5
	}
	err := Validate(defs)
	if !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("error %v is not a config problem list", err)
	}
	var p config.Problems
	if !errors.As(err, &p) {
		t.Fatalf("error %T is not config.Problems", err)
	}
	want := []string{
		`hooks[0].name: required (what a backup plan calls this hook)`,
		`hooks[1].name: must match [a-z0-9][a-z0-9._-]* and be at most 64 bytes (hook "Bad Name")`,
		`hooks[2].timeout: must be > 0, got 0s (hook "pg-dump")`,
		`hooks[3].name: duplicate of hooks[2] (hook "pg-dump")`,
		`hooks[3].command: required (an absolute path, or a program name looked up on PATH; run directly, not through a shell) (hook "pg-dump")`,
		`hooks[4].command "bin/dump.sh": a path must be absolute (or give a bare program name looked up on PATH) (hook "rel")`,
		`hooks[4].dir "backups": must be an absolute path (or empty for the agent's working directory) (hook "rel")`,
		`hooks[4].timeout: must be > 0, got -1s (hook "rel")`,
		`hooks[5].env "1BAD": not a valid variable name (letters, digits and _, not starting with a digit) (hook "env")`,
		`hooks[5].env "STILLPOINT_OP_ID": names starting with STILLPOINT_ are reserved for the variables the backup passes (hook "env")`,
	}
	if strings.Join(p, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(p, "\n"), strings.Join(want, "\n"))
	}
}

func TestValidateRequestEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"STILLPOINT_OP_ID": "a", "STILLPOINT_PLAN": "b"}, ""},
		{map[string]string{"STILLPOINT_OP_ID": "a", "PATH": "/tmp"}, `env "PATH": only variables named STILLPOINT_* may be passed to a hook`},
		{map[string]string{"STILLPOINT_": "a"}, `env "STILLPOINT_": not a valid variable name`},
		{map[string]string{"STILLPOINT_A=B": "a"}, `env "STILLPOINT_A=B": not a valid variable name`},
		{map[string]string{"STILLPOINT_X": "a\x00b"}, `env "STILLPOINT_X": value contains a NUL byte`},
	} {
		env, want := &tc.env, tc.want
		err := ValidateRequestEnv(*env)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("%v: %q, want %q", *env, got, want)
		}
	}
}
