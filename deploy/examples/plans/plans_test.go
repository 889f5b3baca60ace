package plans

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/agent"
	"github.com/stillpoint-dev/stillpoint/internal/config"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
	"github.com/stillpoint-dev/stillpoint/internal/plan"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// agentsEnv is the world the example plans are written for: the example
// agent configs in ../agents (node, role, cluster, hooks).
func agentsEnv(t *testing.T) *plan.Env {
	t.Helper()
	files, err := filepath.Glob("../agents/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example agent configs: %v", err)
	}
	env := &plan.Env{Hooks: map[string][]string{plan.CoordinatorAgent: nil}, MaxHold: time.Hour}
	for _, f := range files {
		cfg := agent.DefaultConfig()
		if err := config.Load(f, &cfg); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !slices.ContainsFunc(env.Members, func(m *pb.MemberRecord) bool { return m.GetName() == cfg.NodeName }) {
			env.Members = append(env.Members, &pb.MemberRecord{Name: cfg.NodeName, Role: cfg.Role, Cluster: cfg.Cluster})
		}
		env.Hooks[cfg.NodeName] = append(env.Hooks[cfg.NodeName], hook.Names(cfg.Hooks)...)
	}
	return env
}

// TestExamplePlans: every example plan decodes strictly, is valid on its
// own, and names only agents and hooks that the example agent configs
// define; the untested ones say so at the top.
func TestExamplePlans(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ledger-auditor-pgdump.yaml", "pitr-only.yaml", "mysql.yaml", "cassandra.yaml"} {
		if !slices.Contains(files, want) {
			t.Errorf("example %s is missing", want)
		}
	}
	env := agentsEnv(t)
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p, err := plan.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := plan.Validate(p, nil); err != nil {
				t.Fatal(err)
			}
			if err := plan.Validate(p, env); err != nil {
				t.Fatalf("against ../agents: %v", err)
			}
			if (strings.Contains(f, "mysql") || strings.Contains(f, "cassandra")) && !strings.HasPrefix(string(b), "# UNTESTED HERE") {
				t.Errorf("%s is not run here but does not say so at the top", f)
			}
			if len(p.GetDatabases()) == 0 {
				t.Errorf("%s declares no databases: its restore plan would be empty", f)
			}
		})
	}
}

// TestPITROnlyHasNoHooks: the PITR-only example runs no hook at all.
func TestPITROnlyHasNoHooks(t *testing.T) {
	b, err := os.ReadFile("pitr-only.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.GetGroups()) != 0 || len(p.GetAfter()) != 0 || p.GetDeleteHook() != nil {
		t.Fatalf("pitr-only runs hooks: %v", p)
	}
	for _, d := range p.GetDatabases() {
		if d.GetMethod() != pb.RestoreMethod_RESTORE_METHOD_PITR {
			t.Errorf("%s: method %v", d.GetName(), d.GetMethod())
		}
	}
}
