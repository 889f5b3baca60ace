package pgtest

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestClusterLifecycle: create a database, write, stop, start on the same
// port, read back; settings reach the server.
func TestClusterLifecycle(t *testing.T) {
	c := Start(t, Options{Settings: map[string]string{"application_name": "'pgtest-check'"}})
	ctx := ctxT(t)
	dsn := c.CreateDatabase("lifecycle")
	if !strings.Contains(dsn, fmt.Sprintf("127.0.0.1:%d/lifecycle", c.Port())) {
		t.Fatalf("DSN %q does not name 127.0.0.1:%d/lifecycle", dsn, c.Port())
	}
	conn := c.Connect(ctx, "lifecycle")
	if _, err := conn.Exec(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	var app string
	if err := conn.QueryRow(ctx, "SHOW application_name").Scan(&app); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(ctx)
	if _, err := os.Stat(c.SocketDir()); err != nil {
		t.Fatalf("socket dir: %v", err)
	}
	port := c.Port()
	c.Stop()
	if c.Running() {
		t.Fatal("Running() after Stop")
	}
	c.Start()
	if c.Port() != port {
		t.Fatalf("restarted on port %d, want %d", c.Port(), port)
	}
	conn = c.Connect(ctx, "lifecycle")
	var v int
	if err := conn.QueryRow(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != 42 {
		t.Fatalf("after restart: v=%d err=%v", v, err)
	}
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "off" {
		t.Fatalf("fsync=%q err=%v, want the default off", fsync, err)
	}
}

// TestPointInTimeRestore: archive WAL, take a base backup, commit two rows
// around a target time, restore to it: the first row is there, the second
// is not.
func TestPointInTimeRestore(t *testing.T) {
	src := Start(t, Options{WALArchive: true})
	ctx := ctxT(t)
	src.CreateDatabase("app")
	conn := src.Connect(ctx, "app")
	if _, err := conn.Exec(ctx, "CREATE TABLE events (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	backup := src.BaseBackup()
	if _, err := conn.Exec(ctx, "INSERT INTO events VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	target := time.Now()
	// The second commit must carry a later server timestamp than target.
	waitUntil := target.Add(2 * time.Millisecond)
	for time.Now().Before(waitUntil) {
		runtime.Gosched()
	}
	if _, err := conn.Exec(ctx, "INSERT INTO events VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	src.ArchiveNow(ctx)

	cases := []struct {
		name   string
		target time.Time
		want   []int
	}{
		{name: "between the commits", target: target, want: []int{1}},
		{name: "end of archive", want: []int{1, 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := Restore(t, RestoreOptions{BaseBackup: backup, ArchiveDir: src.ArchiveDir(), TargetTime: tc.target})
			if dst.Port() == src.Port() {
				t.Fatalf("restored cluster shares port %d with its source", dst.Port())
			}
			rc := dst.Connect(ctx, "app")
			rows, err := rc.Query(ctx, "SELECT id FROM events ORDER BY id")
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for rows.Next() {
				var id int
				if err := rows.Scan(&id); err != nil {
					t.Fatal(err)
				}
				got = append(got, id)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("restored rows %v, want %v", got, tc.want)
			}
			if _, err := rc.Exec(ctx, "INSERT INTO events VALUES (3)"); err != nil {
				t.Fatalf("restored cluster not promoted (read-only): %v", err)
			}
		})
	}
}

// fakeTB records Skip/Fatal and ends the goroutine like the real ones.
type fakeTB struct {
	testing.TB
	mu      sync.Mutex
	skipped string
	fatal   string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.mu.Lock()
	f.skipped = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// TestMissingBinaries: skip naming the Debian package, except under CI=true.
func TestMissingBinaries(t *testing.T) {
	cases := []struct {
		ci        string
		wantSkip  bool
		wantFatal bool
	}{{ci: "", wantSkip: true}, {ci: "false", wantSkip: true}, {ci: "true", wantFatal: true}}
	for _, tc := range cases {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			t.Setenv("PATH", t.TempDir()) // no initdb in PATH
			saved := searchGlob
			searchGlob = t.TempDir() + "/*/bin" // nothing installed
			t.Cleanup(func() { searchGlob = saved })
			f := &fakeTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				newCluster(f, "")
			}()
			<-done
			f.mu.Lock()
			defer f.mu.Unlock()
			if (f.skipped != "") != tc.wantSkip || (f.fatal != "") != tc.wantFatal {
				t.Fatalf("skipped=%q fatal=%q, want skip %v fatal %v", f.skipped, f.fatal, tc.wantSkip, tc.wantFatal)
			}
			if msg := f.skipped + f.fatal; !strings.Contains(msg, "Debian package postgresql") {
				t.Fatalf("message %q does not name the Debian package postgresql", msg)
			}
		})
	}
}
