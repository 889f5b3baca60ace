package fsm

import (
	"errors"
	"fmt"
	"io"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// snapshotVersion is the first byte of every snapshot.
const snapshotVersion byte = 1

// ErrBadSnapshot: a snapshot that cannot be restored.
var ErrBadSnapshot = errors.New("bad FSM snapshot")

// Snapshot copies the state under the read lock; Persist writes the copy
// while ApplyCommand carries on.
func (f *FSM) Snapshot() (*Snapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &Snapshot{data: f.st.toSnapshot()}, nil
}

// Restore replaces the whole state with the snapshot in r: it builds a
// fresh state, then swaps it in under the lock.
func (f *FSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("%w: read: %v", ErrBadSnapshot, err)
	}
	snap, err := DecodeSnapshot(b)
	if err != nil {
		return err
	}
	fresh := stateFromSnapshot(snap)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = fresh
	f.log.Info("state restored from snapshot", zap.Uint64("epoch", fresh.epoch), zap.Int("operations", len(fresh.ops)))
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

// EncodeSnapshot is the on-disk form of a snapshot message.
func EncodeSnapshot(snap *pb.FSMSnapshot) ([]byte, error) {
	body, err := proto.Marshal(snap)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot: %w", err)
	}
	return append([]byte{snapshotVersion}, body...), nil
}

// DecodeSnapshot parses what EncodeSnapshot wrote.
func DecodeSnapshot(b []byte) (*pb.FSMSnapshot, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadSnapshot)
	}
	if b[0] != snapshotVersion {
		return nil, fmt.Errorf("%w: version %d, this server reads version %d", ErrBadSnapshot, b[0], snapshotVersion)
	}
	snap := &pb.FSMSnapshot{}
	if err := proto.Unmarshal(b[1:], snap); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	return snap, nil
}

// Snapshot is a point-in-time copy of the state (see FSM.Snapshot).
type Snapshot struct {
	data *pb.FSMSnapshot
}

// Persist writes the snapshot's on-disk form (EncodeSnapshot) to w; Restore
// reads it back.
func (s *Snapshot) Persist(w io.Writer) error {
	b, err := EncodeSnapshot(s.data)
	if err == nil {
		_, err = w.Write(b)
	}
	if err != nil {
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return nil
}

// Release frees nothing: the copy is garbage-collected.
func (s *Snapshot) Release() {}
