package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestAgentCommandRefusesBadConfig: flags, env and file problems are
// reported together, one line each, and the agent does not start.
func TestAgentCommandRefusesBadConfig(t *testing.T) {
	t.Setenv("STILLPOINT_GOSSIP_ENCRYPTION_KEY", "not-base64!")
	t.Setenv("STILLPOINT_CLUSTER", "prod")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"flags and env", []string{"agent", "--node-name", "ledger 1", "--ntp-servers", "ntp1", "--data-dir", t.TempDir()},
			[]string{`node_name "ledger 1"`, `ntp.servers[0] "ntp1"`, "gossip.encryption_key: not valid base64"}},
		{"missing file", []string{"agent", "--config", "/nonexistent/agent.yaml"}, []string{"/nonexistent/agent.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newRootCmd()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(tt.args)
			err := root.Execute()
			if err == nil {
				t.Fatal("agent started with a bad config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "cluster: required") {
				t.Errorf("STILLPOINT_CLUSTER was not applied:\n%v", err)
			}
		})
	}
}
