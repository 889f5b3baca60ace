package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// resolveServer parses args on a fresh server command and resolves its config.
func resolveServer(t *testing.T, args ...string) (serverFile, error) {
	t.Helper()
	var file serverFile
	var rerr error
	cmd := newServerCmd()
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		file, _, rerr = resolveServerConfig(cmd)
		return nil
	}
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	return file, rerr
}

func TestServerConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.yaml")
	yaml := `node_id: from-file
data_dir: ` + dir + `
bootstrap_expect: 3
gossip:
  bind: 127.0.0.1:7946
  join: [10.0.0.1:7946]
grpc_tls:
  ca_file: /etc/ca.pem
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STILLPOINT_NODE_ID", "from-env")
	t.Setenv("STILLPOINT_BOOTSTRAP_EXPECT", "5")
	file, err := resolveServer(t, "--config", path, "--bootstrap-expect", "3", "--grpc-tls-server-name", "coord")
	if err != nil {
		t.Fatal(err)
	}
	if file.NodeID != "from-env" || file.BootstrapExpect != 3 || file.Gossip.Join[0] != "10.0.0.1:7946" ||
		file.GRPCTLS.CAFile != "/etc/ca.pem" || file.GRPCTLS.ServerName != "coord" {
		t.Fatalf("resolved %+v", file)
	}
	cfg, err := file.toConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeID != "from-env" || cfg.Gossip.Name != "from-env" || cfg.Gossip.BindPort != 7946 || cfg.BootstrapExpect != 3 {
		t.Fatalf("config %+v", cfg)
	}
}

func TestServerConfigReportsEveryProblem(t *testing.T) {
	_, err := resolveServer(t, "--bootstrap", "--bootstrap-expect", "3", "--gossip-bind", "x", "--gossip-encryption-key", "!!", "--data-dir", t.TempDir(),
		"--ntp-servers", "pool.ntp.org")
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"node_id", "exclusive", "gossip.bind", "encryption_key", `ntp_servers "pool.ntp.org"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestServerConfigUnknownFileKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(path, []byte("node_id: a\nbootstrap_expcet: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := resolveServer(t, "--config", path)
	if err == nil || !strings.Contains(err.Error(), "bootstrap_expcet") {
		t.Fatalf("err = %v", err)
	}
}

// The server file's alerting section reaches the coordinator config.
func TestServerConfigAlerting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.yaml")
	yaml := `node_id: s1
data_dir: ` + dir + `
bootstrap: true
alerting:
  alertmanager_urls: [http://127.0.0.1:9093]
  webhook_urls: [https://hooks.example/stillpoint]
  resend_interval: 30s
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := resolveServer(t, "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := file.toConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := cfg.Alerting
	if len(a.AlertmanagerURLs) != 1 || a.AlertmanagerURLs[0] != "http://127.0.0.1:9093" || len(a.WebhookURLs) != 1 || a.ResendInterval.Seconds() != 30 {
		t.Fatalf("alerting = %+v", a)
	}
	cfg.Alerting.WebhookURLs = []string{"not a url"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "not a url") {
		t.Fatalf("a bad webhook URL: %v", err)
	}
}

// TestServerConfigHooks: the server's `hooks:` (for plan hooks with agent
// "coordinator") are parsed into coordinator.Config.Hooks and a bad one is
// a start-up error naming its field.
func TestServerConfigHooks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.yaml")
	body := `node_id: s1
data_dir: ` + dir + `
bootstrap: true
hooks:
  - name: notify-catalog
    command: /usr/local/bin/notify-catalog
    args: [--backup]
    timeout: 1m
    env: {CATALOG_URL: "https://catalog.example"}
  - name: bad
    command: relative/script.sh
`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := resolveServer(t, "--config", path) // start-up refuses the config
	for _, want := range []string{
		`hooks[1].command "relative/script.sh": a path must be absolute (or give a bare program name looked up on PATH) (hook "bad")`,
		`hooks[1].timeout: must be > 0, got 0s (hook "bad")`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("bad hook: %v, want a problem %q", err, want)
		}
	}
	file.Hooks = file.Hooks[:1]
	cfg, err := file.toConfig()
	if err != nil {
		t.Fatalf("good hooks: %v", err)
	}
	h := cfg.Hooks[0]
	if len(cfg.Hooks) != 1 || h.Name != "notify-catalog" || h.Timeout.Minutes() != 1 || h.Args[0] != "--backup" || h.Env["CATALOG_URL"] != "https://catalog.example" {
		t.Fatalf("hooks = %+v", cfg.Hooks)
	}
}
