package agents

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/agent"
	"github.com/stillpoint-dev/stillpoint/internal/config"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
	"github.com/stillpoint-dev/stillpoint/internal/pgtest"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// loadAgent reads an example agent config and validates it as the agent
// would at start-up.
func loadAgent(t *testing.T, file string) agent.Config {
	t.Helper()
	cfg := agent.DefaultConfig()
	if err := config.Load(file, &cfg); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return cfg
}

func findHook(t *testing.T, cfg agent.Config, name string) hook.Definition {
	t.Helper()
	for _, d := range cfg.Hooks {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no hook %s in %v", name, hook.Names(cfg.Hooks))
	return hook.Definition{}
}

// TestExampleConfigsAndScripts: every example agent config is a valid
// agent config whose hooks point at a script shipped here; every script is
// strict bash that parses, reads STILLPOINT_OP_ID, and the untested ones
// say so at the top.
func TestExampleConfigsAndScripts(t *testing.T) {
	scripts := map[string]bool{}
	for _, file := range []string{"postgres-agent.yaml", "mysql-agent.yaml", "cassandra-agent.yaml"} {
		cfg := loadAgent(t, file)
		if len(cfg.Hooks) == 0 {
			t.Errorf("%s defines no hooks", file)
		}
		for _, d := range cfg.Hooks {
			script := filepath.Join("hooks", filepath.Base(d.Command))
			if _, err := os.Stat(script); err != nil {
				t.Errorf("%s: hook %s runs %s, not shipped here: %v", file, d.Name, d.Command, err)
			}
			scripts[script] = true
		}
	}
	entries, _ := filepath.Glob("hooks/*.sh")
	for _, script := range entries {
		if !scripts[script] {
			t.Errorf("%s is used by no example config", script)
		}
		b, err := os.ReadFile(script)
		if err != nil {
			t.Fatal(err)
		}
		body := string(b)
		if !strings.HasPrefix(body, "#!/usr/bin/env bash\n") || !strings.Contains(body, "\nset -euo pipefail\n") ||
			!strings.Contains(body, "STILLPOINT_OP_ID") {
			t.Errorf("%s: want a bash shebang, set -euo pipefail and STILLPOINT_OP_ID", script)
		}
		tested := strings.Contains(script, "pg-dump")
		if header := strings.SplitN(body, "\n", 3)[1]; !tested && !strings.HasPrefix(header, "# UNTESTED HERE") {
			t.Errorf("%s is not tested here but its first comment line is %q", script, header)
		}
		if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", script, err, out)
		}
		if st, _ := os.Stat(script); st.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s is not executable", script)
		}
	}
}

// TestPgDumpHookRestores runs the pg_dump example through the hook
// executor (as an agent would, with the example's definition) against a
// real PostgreSQL, then restores the dump into a fresh database with
// pg_restore and checks the rows: the dump holds the state at the time it
// ran, not the writes after it.
func TestPgDumpHookRestores(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg.CreateDatabase("ledger")
	conn := pg.Connect(ctx, "ledger")
	for _, q := range []string{
		`CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)`,
		`INSERT INTO accounts SELECT i, 1000 + i FROM generate_series(1, 500) AS i`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	def := findHook(t, loadAgent(t, "postgres-agent.yaml"), "pg-dump-ledger")
	script, err := filepath.Abs(filepath.Join("hooks", filepath.Base(def.Command)))
	if err != nil {
		t.Fatal(err)
	}
	backups := t.TempDir()
	def.Command, def.Dir = script, backups
	def.Env["PATH"] = pg.BinDir() + ":/usr/bin:/bin"
	def.Env["BACKUP_DIR"] = backups
	def.Env["PGHOST"], def.Env["PGPORT"], def.Env["PGUSER"] = "127.0.0.1", strconv.Itoa(pg.Port()), "postgres"
	delete(def.Env, "PGPASSFILE")
	if err := hook.Validate([]hook.Definition{def}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"STILLPOINT_OP_ID": "op-20261202-0001", "STILLPOINT_STEP_ID": "ledger-databases/0", "STILLPOINT_PLAN": "nightly"}
	run := (&hook.Executor{Label: "agent ledger-1"}).Run(ctx, def, env)
	if run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
		t.Fatalf("pg-dump hook: %v %q\n%s", run.GetState(), run.GetMessage(), run.GetOutputTail())
	}
	lines := strings.Split(strings.TrimSpace(string(run.GetOutputTail())), "\n")
	dump := lines[len(lines)-1]
	if want := filepath.Join(backups, "op-20261202-0001", "ledger.dump"); dump != want {
		t.Fatalf("last output line %q, want the dump's path %q", dump, want)
	}

	// Writes after the dump must not be in it.
	if _, err := conn.Exec(ctx, `UPDATE accounts SET balance = 0; INSERT INTO accounts VALUES (501, 7)`); err != nil {
		t.Fatal(err)
	}
	// Run again under the same op: the script refuses to overwrite.
	if again := (&hook.Executor{}).Run(ctx, def, env); again.GetState() != pb.HookState_HOOK_STATE_FAILED || again.GetExitCode() != 3 {
		t.Fatalf("second dump under the same op: %v exit %d %q", again.GetState(), again.GetExitCode(), again.GetMessage())
	}

	pg.CreateDatabase("restored")
	restore := exec.CommandContext(ctx, filepath.Join(pg.BinDir(), "pg_restore"), "--no-owner", "--exit-on-error",
		"--host=127.0.0.1", "--port="+strconv.Itoa(pg.Port()), "--username=postgres", "--dbname=restored", dump)
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	rc := pg.Connect(ctx, "restored")
	var n, sum int64
	if err := rc.QueryRow(ctx, `SELECT count(*), sum(balance) FROM accounts`).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	// 500 rows, balances 1001..1500.
	if n != 500 || sum != 500*1000+500*501/2 {
		t.Fatalf("restored %d rows summing to %d, want 500 rows summing to %d", n, sum, 500*1000+500*501/2)
	}
}
