package coordinator

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"

	"github.com/stillpoint-dev/stillpoint/internal/logging"
)

// raftParts are the pieces of a Raft node the server must close.
type raftParts struct {
	raft      *raft.Raft
	wal       *wal.WAL
	transport *raft.NetworkTransport
	// contacts is when the leader last heard each follower (see
	// contactTransport).
	contacts *peerContacts
	stream   *drainStream
	notify   chan bool
}

// raftDrainTimeout bounds how long close waits for the transport's
// connection handlers before it closes the log.
const raftDrainTimeout = 5 * time.Second

func (s *Server) setupRaft() (*raftParts, error) {
	hlog := logging.HCLog(s.log.Named("raft"))
	dir := filepath.Join(s.cfg.DataDir, "raft")
	walDir := filepath.Join(dir, "wal")
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return nil, fmt.Errorf("server %s: create raft dir: %w", s.cfg.NodeID, err)
	}
	// A zero segment size means raft-wal's default (64 MiB).
	w, err := wal.Open(walDir, wal.WithLogger(hlog.Named("wal")), wal.WithSegmentSize(s.cfg.WALSegmentSize))
	if err != nil {
		return nil, fmt.Errorf("server %s: open raft log %s: %w", s.cfg.NodeID, walDir, err)
	}
	parts := &raftParts{wal: w}
	fail := func(err error) (*raftParts, error) {
		parts.close()
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, s.cfg.SnapshotRetain, hlog.Named("snapshot"))
	if err != nil {
		return fail(fmt.Errorf("server %s: snapshot store in %s: %w", s.cfg.NodeID, dir, err))
	}
	var advertise net.Addr
	if s.cfg.RaftAdvertiseAddr != "" {
		advertise, err = net.ResolveTCPAddr("tcp", s.cfg.RaftAdvertiseAddr)
		if err != nil {
			return fail(fmt.Errorf("server %s: raft advertise address %q: %w", s.cfg.NodeID, s.cfg.RaftAdvertiseAddr, err))
		}
	}
	stream, err := newDrainStream(s.cfg.RaftBindAddr, advertise)
	if err != nil {
		return fail(fmt.Errorf("server %s: raft transport on %s: %w", s.cfg.NodeID, s.cfg.RaftBindAddr, err))
	}
	parts.stream = stream
	stream.tls = s.raftTLS()
	trans := raft.NewNetworkTransportWithLogger(stream, 3, 10*time.Second, hlog.Named("transport"))
	parts.transport = trans
	parts.contacts = newPeerContacts()

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.cfg.NodeID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = s.cfg.Raft.HeartbeatTimeout
	rc.ElectionTimeout = s.cfg.Raft.ElectionTimeout
	rc.LeaderLeaseTimeout = s.cfg.Raft.LeaderLeaseTimeout
	rc.CommitTimeout = s.cfg.Raft.CommitTimeout
	rc.SnapshotThreshold = s.cfg.SnapshotThreshold
	rc.SnapshotInterval = s.cfg.SnapshotInterval
	rc.TrailingLogs = s.cfg.TrailingLogs
	// NotifyCh blocks Raft when undrained: monitorLeadership always drains it.
	parts.notify = make(chan bool, 16)
	rc.NotifyCh = parts.notify
	if err := raft.ValidateConfig(rc); err != nil {
		return fail(fmt.Errorf("server %s: raft config: %w", s.cfg.NodeID, err))
	}

	existing, err := raft.HasExistingState(w, w, snaps)
	if err != nil {
		return fail(fmt.Errorf("server %s: read raft state: %w", s.cfg.NodeID, err))
	}
	r, err := raft.NewRaft(rc, raftFSM{s.fsm}, w, w, snaps, &contactTransport{NetworkTransport: trans, contacts: parts.contacts})
	if err != nil {
		return fail(fmt.Errorf("server %s: start raft: %w", s.cfg.NodeID, err))
	}
	parts.raft = r
	if s.cfg.Bootstrap && !existing {
		cfg := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: trans.LocalAddr(), Suffrage: raft.Voter}}}
		if err := r.BootstrapCluster(cfg).Error(); err != nil && err != raft.ErrCantBootstrap {
			return fail(fmt.Errorf("server %s: bootstrap: %w", s.cfg.NodeID, err))
		}
		s.log.Info("bootstrapped a single-server cluster")
	}
	return parts, nil
}

// close shuts Raft down, then its transport, waits for the transport's
// connection handlers (bounded), then closes the log. Safe on partial parts.
func (p *raftParts) close() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if p.raft != nil {
		keep(p.raft.Shutdown().Error())
	}
	if p.transport != nil {
		keep(p.transport.Close())
	}
	if p.stream != nil && !p.stream.drain(raftDrainTimeout) {
		// A handler still holds a connection: it could write to the log
		// after a close (a panic). Leave the log to the process's exit.
		keep(fmt.Errorf("raft transport: a connection handler still running after %v; raft log left open", raftDrainTimeout))
		return first
	}
	if p.wal != nil {
		keep(p.wal.Close())
	}
	return first
}
