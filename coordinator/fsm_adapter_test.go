package coordinator

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

type adapterSink struct {
	bytes.Buffer
	failWrite         bool
	cancelled, closed bool
}

func (s *adapterSink) ID() string    { return "mem" }
func (s *adapterSink) Cancel() error { s.cancelled = true; return nil }
func (s *adapterSink) Close() error  { s.closed = true; return nil }
func (s *adapterSink) Write(p []byte) (int, error) {
	if s.failWrite {
		return 0, errors.New("disk full")
	}
	return s.Buffer.Write(p)
}

func TestRaftFSMAdapter(t *testing.T) {
	a := raftFSM{fsm.New(nil)}
	b, err := fsm.Encode(&pb.BumpEpochCommand{LeaderId: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	// Only LogCommand entries reach the FSM.
	if out := a.Apply(&raft.Log{Index: 1, Type: raft.LogConfiguration, Data: b}); out != nil || a.f.LastIndex() != 0 {
		t.Fatalf("configuration entry: got %v, last index %d; want nil, 0", out, a.f.LastIndex())
	}
	resp, ok := a.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: b}).(*fsm.Response)
	if !ok || resp.Err != nil || resp.Index != 2 || a.f.Epoch() != 1 {
		t.Fatalf("command entry: got %+v (ok=%v), epoch %d; want index 2, epoch 1", resp, ok, a.f.Epoch())
	}
	// A skipped ignorable command answers an untyped nil.
	if out := a.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: []byte{byte(fsm.IgnoreUnknownTypeFlag | 0x7f)}}); out != nil {
		t.Fatalf("ignorable unknown command: got %#v, want untyped nil", out)
	}

	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &adapterSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v, want closed only", sink.closed, sink.cancelled)
	}
	g := raftFSM{fsm.New(nil)}
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if g.f.Epoch() != 1 {
		t.Fatalf("restored epoch %d, want 1", g.f.Epoch())
	}

	bad := &adapterSink{failWrite: true}
	if err := snap.Persist(bad); err == nil || !bad.cancelled || bad.closed {
		t.Fatalf("failed write: err=%v cancelled=%v closed=%v; want an error and a cancelled sink", err, bad.cancelled, bad.closed)
	}
}
