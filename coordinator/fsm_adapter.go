package coordinator

import (
	"io"

	"github.com/hashicorp/raft"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
)

// raftFSM adapts the Raft-free *fsm.FSM to raft.FSM: committed command
// entries go to ApplyCommand, snapshots are written to Raft's sinks.
type raftFSM struct{ f *fsm.FSM }

var (
	_ raft.FSM         = raftFSM{}
	_ raft.FSMSnapshot = raftSnapshot{}
)

// Apply applies a LogCommand entry and returns its *fsm.Response (nil for
// other entry types and skipped ignorable commands).
func (a raftFSM) Apply(l *raft.Log) interface{} {
	if l.Type != raft.LogCommand {
		return nil
	}
	if r := a.f.ApplyCommand(l.Index, l.Data); r != nil {
		return r
	}
	return nil // an untyped nil, not a nil *fsm.Response
}

func (a raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := a.f.Snapshot()
	if err != nil {
		return nil, err
	}
	return raftSnapshot{s}, nil
}

func (a raftFSM) Restore(r io.ReadCloser) error { return a.f.Restore(r) }

type raftSnapshot struct{ s *fsm.Snapshot }

// Persist writes the snapshot to sink and closes it, or cancels it on error.
func (s raftSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.s.Persist(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s raftSnapshot) Release() { s.s.Release() }
