package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func TestUIURL(t *testing.T) {
	for _, c := range []struct {
		http, grpc, page, want, err string
	}{
		{"127.0.0.1:7402", "127.0.0.1:7400", "", "http://127.0.0.1:7402/ui/", ""},
		{"[::]:7402", "10.0.0.5:7400", "clocks", "http://10.0.0.5:7402/ui/clocks", ""},
		{"0.0.0.0:7402", "[fd00::5]:7400", "ops", "http://[fd00::5]:7402/ui/ops", ""},
		{":7402", "db1.example:7400", "", "http://db1.example:7402/ui/", ""},
		{"[::]:7402", "[::]:7400", "", "", "listens for HTTP on all interfaces"},
		{"", "127.0.0.1:7400", "", "", "serves no HTTP: start it with --metrics-listen"},
	} {
		got, err := uiURL(&pb.GetServerInfoResponse{NodeId: "server-1", HttpAddress: c.http, GrpcAddress: c.grpc}, c.page)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s/%s: err %v, want %q", c.http, c.grpc, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s/%s: %q, %v; want %q", c.http, c.grpc, got, err, c.want)
		}
	}
}

// TestUICommand: the URL printed for a running server serves its UI, and
// --open hands that URL to the browser opener.
func TestUICommand(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.WithServerConfig(func(_ int, cfg *coordinator.Config) { cfg.HTTPAddr = "127.0.0.1:0" }))
	c.WaitForLeader(t)
	addr := c.Server(0).GRPCAddr()
	var opened []string
	old := openURL
	openURL = func(u string) error { opened = append(opened, u); return nil }
	t.Cleanup(func() { openURL = old })

	out, err := runCoordCLI(t, "ui", "clocks", "--open", "--addr", addr)
	if err != nil {
		t.Fatalf("ui: %v\n%s", err, out)
	}
	url := strings.TrimSpace(out)
	if want := "http://" + c.Server(0).HTTPAddr() + "/ui/clocks"; url != want {
		t.Fatalf("ui printed %q, want %q", url, want)
	}
	if len(opened) != 1 || opened[0] != url {
		t.Errorf("opened %q, want [%s]", opened, url)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `<h1>Clocks</h1>`) {
		t.Errorf("GET %s: %s\n%s", url, resp.Status, body)
	}
}
