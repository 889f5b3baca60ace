package gossip

import (
	"github.com/hashicorp/memberlist"
)

// delegate serves memberlist. None of its methods block: NodeMeta reads an
// atomically stored slice and the event methods only update the pool's map
// and do non-blocking sends.
type delegate struct{ p *Pool }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
)

// NodeMeta returns the latest encoded Meta. EncodeMeta already refused
// anything over memberlist.MetaMaxSize; the check guards memberlist's panic.
func (d delegate) NodeMeta(limit int) []byte {
	b := d.p.encoded.Load()
	if b == nil || len(*b) > limit {
		return nil
	}
	return *b
}

// NotifyMsg ignores user messages: state travels in metadata.
func (delegate) NotifyMsg([]byte) {}

// GetBroadcasts has nothing to broadcast.
func (delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState adds nothing to push-pull.
func (delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState ignores remote push-pull state.
func (delegate) MergeRemoteState([]byte, bool) {}

func (d delegate) NotifyJoin(n *memberlist.Node)   { d.p.observe(EventJoin, n) }
func (d delegate) NotifyLeave(n *memberlist.Node)  { d.p.observe(EventLeave, n) }
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.p.observe(EventUpdate, n) }
