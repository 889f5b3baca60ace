package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ArchiveNow forces a WAL segment switch and waits until the segment that
// holds everything written so far is in ArchiveDir (Options.WALArchive).
func (c *Cluster) ArchiveNow(ctx context.Context) {
	c.t.Helper()
	conn := c.Connect(ctx, "postgres")
	var seg string
	if err := conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal())").Scan(&seg); err != nil {
		c.t.Fatalf("pgtest: pg_switch_wal: %v", err)
	}
	_ = conn.Close(ctx)
	path := filepath.Join(c.archiveDir, seg)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("pgtest: WAL segment %s not archived in %s: %v\nserver log:\n%s", seg, c.archiveDir, ctx.Err(), c.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// BaseBackup takes a plain-format base backup with pg_basebackup (WAL
// streamed into it) and returns its directory, inside the cluster's temp dir.
func (c *Cluster) BaseBackup() string {
	c.t.Helper()
	c.backups++
	dir := filepath.Join(c.root, fmt.Sprintf("basebackup-%d", c.backups))
	if err := c.r.run("pg_basebackup", "-D", dir, "-h", "127.0.0.1", "-p", fmt.Sprint(c.port), "-U", "postgres",
		"-X", "stream", "--checkpoint=fast", "--no-sync"); err != nil {
		c.t.Fatalf("pgtest: %v", err)
	}
	return dir
}

// RestoreOptions describes a point-in-time restore.
type RestoreOptions struct {
	// BaseBackup is a directory from Cluster.BaseBackup.
	BaseBackup string
	// ArchiveDir holds the archived WAL to replay (the source cluster's
	// ArchiveDir()).
	ArchiveDir string
	// TargetTime is recovery_target_time; zero replays all archived WAL.
	TargetTime time.Time
	// Settings are extra postgresql.conf settings for the restored cluster.
	Settings map[string]string
	// BinDir overrides where the server binaries are looked up.
	BinDir string
}

// Restore builds a new cluster from a base backup, replays archived WAL up
// to TargetTime (inclusive) and promotes it; it returns once the cluster
// accepts writes. The restored cluster does not archive.
func Restore(t testing.TB, opts RestoreOptions) *Cluster {
	t.Helper()
	c := newCluster(t, opts.BinDir)
	if opts.BaseBackup == "" || opts.ArchiveDir == "" {
		t.Fatalf("pgtest: restore needs BaseBackup and ArchiveDir")
	}
	if err := c.r.run("cp", "-a", opts.BaseBackup, c.dataDir); err != nil {
		t.Fatalf("pgtest: copy base backup: %v", err)
	}
	settings := map[string]string{
		"archive_mode":           "off",
		"restore_command":        quote(fmt.Sprintf("cp %s/%%f %%p", opts.ArchiveDir)),
		"recovery_target_action": "promote",
	}
	if !opts.TargetTime.IsZero() {
		settings["recovery_target_time"] = quote(opts.TargetTime.UTC().Format("2006-01-02 15:04:05.999999") + "+00")
		settings["recovery_target_inclusive"] = "on"
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	if err := c.appendConf("pgtest-restore", settings); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	signal := filepath.Join(c.dataDir, "recovery.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := c.r.own(signal); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	c.Start()
	c.waitPromoted()
	return c
}

// waitPromoted waits until recovery ended and the server accepts writes.
func (c *Cluster) waitPromoted() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		inRecovery, err := c.inRecovery(ctx)
		if err == nil && !inRecovery {
			return
		}
		if strings.Contains(c.logTail(), "FATAL") && ctx.Err() == nil {
			if _, statErr := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); statErr != nil {
				c.running = false
				c.t.Fatalf("pgtest: restored cluster stopped during recovery:\n%s", c.logTail())
			}
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("pgtest: restored cluster still in recovery after 2m (last error %v):\n%s", err, c.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *Cluster) inRecovery(ctx context.Context) (bool, error) {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return false, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var in bool
	err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&in)
	return in, err
}
