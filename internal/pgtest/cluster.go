// Package pgtest runs throwaway PostgreSQL clusters for tests: initdb into a
// temp dir, start on 127.0.0.1 at a free port (plus a unix socket in the temp
// dir), trust auth, and the steps a point-in-time-restore test needs — WAL
// archiving, pg_basebackup, stop/start, restore a base backup to a target
// time. Server binaries come from PATH or /usr/lib/postgresql/*/bin; without
// them the test is skipped (failed when CI=true). As root, the server runs
// as the postgres user.
//
// Cluster methods report failures with t.Fatal: call them from the test's
// goroutine.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options configures a new cluster.
type Options struct {
	// Settings are extra postgresql.conf settings (name → value, written
	// verbatim: quote string values, e.g. "'1s'"). They override the
	// defaults (fsync=off, small memory) and the WAL archive settings.
	Settings map[string]string
	// WALArchive turns on continuous archiving into ArchiveDir():
	// wal_level=replica, archive_mode=on, a cp archive_command and
	// archive_timeout=1s.
	WALArchive bool
	// BinDir overrides where the server binaries are looked up.
	BinDir string
}

// Cluster is one PostgreSQL server with its data directory.
type Cluster struct {
	t          testing.TB
	r          *runner
	root       string // temp dir, owned by the server user
	dataDir    string
	sockDir    string
	archiveDir string
	logFile    string
	port       int
	running    bool
	backups    int
}

// defaults keep a test cluster small and fast; durability is not needed.
var defaults = map[string]string{
	"fsync":                      "off",
	"shared_buffers":             "'16MB'",
	"max_connections":            "30",
	"log_timezone":               "'UTC'",
	"timezone":                   "'UTC'",
	"max_wal_size":               "'64MB'",
	"log_min_messages":           "warning",
	"log_checkpoints":            "off",
	"dynamic_shared_memory_type": "posix",
}

// Start creates and starts a new cluster, removed at test cleanup.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c := newCluster(t, opts.BinDir)
	if err := c.r.run("initdb", "-D", c.dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Fatalf("pgtest: initdb: %v", err)
	}
	settings := maps.Clone(defaults)
	if opts.WALArchive {
		if err := c.r.mkdir(c.archiveDir); err != nil {
			t.Fatalf("pgtest: archive dir: %v", err)
		}
		settings["wal_level"] = "replica"
		settings["archive_mode"] = "on"
		settings["archive_command"] = quote(fmt.Sprintf("test ! -f %s/%%f && cp %%p %s/%%f", c.archiveDir, c.archiveDir))
		settings["archive_timeout"] = "'1s'"
	}
	maps.Copy(settings, opts.Settings)
	if err := c.appendConf("pgtest", settings); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	c.Start()
	return c
}

// newCluster finds the binaries (skip or fail when absent), makes the temp
// root and registers cleanup.
func newCluster(t testing.TB, binDir string) *Cluster {
	t.Helper()
	dir, err := findBinDir(binDir)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: %v (CI=true: PostgreSQL is required)", err)
		}
		t.Skipf("pgtest: %v", err)
	}
	r, err := newRunner(dir)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	root, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatalf("pgtest: temp dir: %v", err)
	}
	if err := r.own(root); err != nil {
		_ = os.RemoveAll(root)
		t.Fatalf("pgtest: chown temp dir to postgres: %v", err)
	}
	r.workDir = root
	c := &Cluster{
		t: t, r: r, root: root,
		dataDir:    filepath.Join(root, "data"),
		sockDir:    filepath.Join(root, "sock"),
		archiveDir: filepath.Join(root, "archive"),
		logFile:    filepath.Join(root, "postgres.log"),
	}
	if err := r.mkdir(c.sockDir); err != nil {
		t.Fatalf("pgtest: socket dir: %v", err)
	}
	t.Cleanup(func() {
		if c.running {
			_ = c.r.run("pg_ctl", "-D", c.dataDir, "-m", "immediate", "-w", "stop")
		}
		_ = os.RemoveAll(root)
	})
	return c
}

// BinDir is the directory of the PostgreSQL binaries the cluster runs
// (client tools such as pg_dump and pg_restore of the same version are
// there too).
func (c *Cluster) BinDir() string { return c.r.binDir }

// Dir is the data directory.
func (c *Cluster) Dir() string { return c.dataDir }

// ArchiveDir is where WAL is archived (Options.WALArchive).
func (c *Cluster) ArchiveDir() string { return c.archiveDir }

// SocketDir is the unix socket directory.
func (c *Cluster) SocketDir() string { return c.sockDir }

// Port is the TCP port on 127.0.0.1 (0 before the first start).
func (c *Cluster) Port() int { return c.port }

// Running reports whether the server is up.
func (c *Cluster) Running() bool { return c.running }

// DSN is a URL for database db as user postgres over TCP.
func (c *Cluster) DSN(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: fmt.Sprintf("127.0.0.1:%d", c.port), Path: "/" + db,
		RawQuery: "sslmode=disable"}
	return u.String()
}

// Start starts a stopped cluster on its port (a free port is picked on the
// first start; later starts reuse it so DSNs stay valid).
func (c *Cluster) Start() {
	c.t.Helper()
	if c.running {
		c.t.Fatalf("pgtest: cluster %s already running", c.dataDir)
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if c.port == 0 || attempt > 0 {
			if c.port, err = freePort(); err != nil {
				c.t.Fatalf("pgtest: %v", err)
			}
		}
		if err = c.appendConf("pgtest-listen", map[string]string{
			"listen_addresses":        "'127.0.0.1'",
			"port":                    fmt.Sprint(c.port),
			"unix_socket_directories": quote(c.sockDir),
		}); err != nil {
			c.t.Fatalf("pgtest: %v", err)
		}
		if err = c.r.run("pg_ctl", "-D", c.dataDir, "-l", c.logFile, "-w", "-t", "120", "start"); err == nil {
			c.running = true
			return
		}
		if !strings.Contains(c.logTail(), "could not bind") {
			break
		}
	}
	c.t.Fatalf("pgtest: start %s: %v\nserver log:\n%s", c.dataDir, err, c.logTail())
}

// Stop shuts the server down cleanly (fast mode), keeping the data dir.
func (c *Cluster) Stop() {
	c.t.Helper()
	if !c.running {
		return
	}
	if err := c.r.run("pg_ctl", "-D", c.dataDir, "-m", "fast", "-w", "-t", "120", "stop"); err != nil {
		c.t.Fatalf("pgtest: stop %s: %v\nserver log:\n%s", c.dataDir, err, c.logTail())
	}
	c.running = false
}

// Connect opens a connection to db, closed at test cleanup.
func (c *Cluster) Connect(ctx context.Context, db string) *pgx.Conn {
	c.t.Helper()
	conn, err := pgx.Connect(ctx, c.DSN(db))
	if err != nil {
		c.t.Fatalf("pgtest: connect to %s on port %d: %v", db, c.port, err)
	}
	c.t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// CreateDatabase creates database name and returns its DSN.
func (c *Cluster) CreateDatabase(name string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		c.t.Fatalf("pgtest: connect on port %d: %v", c.port, err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		c.t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return c.DSN(name)
}

// appendConf appends a block of settings to postgresql.conf; later lines win.
func (c *Cluster) appendConf(label string, settings map[string]string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\n# %s\n", label)
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&b, "%s = %s\n", k, settings[k])
	}
	f, err := os.OpenFile(filepath.Join(c.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("postgresql.conf in %s: %w", c.dataDir, err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		_ = f.Close()
		return fmt.Errorf("postgresql.conf in %s: %w", c.dataDir, err)
	}
	return f.Close()
}

// logTail returns the end of the server log (for failure messages).
func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.logFile)
	if err != nil {
		return "(no server log: " + err.Error() + ")"
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("free port: not a TCP address")
	}
	return addr.Port, nil
}

// quote makes a postgresql.conf string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
