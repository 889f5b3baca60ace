package main

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/config"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
)

// splitAddrs parses --addr / STILLPOINT_ADDR: one or more host:port
// separated by commas (spaces around them are ignored).
func splitAddrs(s string, p *config.Problems) []string {
	var out []string
	for i, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			p.Addf("--addr %q: address %d is empty; want host:port[,host:port...]", s, i+1)
			continue
		}
		out = append(out, a)
	}
	return out
}

// failoverConn is a grpc.ClientConnInterface over several coordinator
// servers. A call goes to the server that answered last (the first at
// start); on a connection failure, or an UNAVAILABLE the server marks
// NOT_APPLIED (nothing changed), it goes to the next, until each was
// tried once. Decided by code, ErrorInfo reason and connection state,
// never by message text.
type failoverConn struct {
	addrs []string
	conns []*grpc.ClientConn

	mu    sync.Mutex
	cur   int       // the server calls start at
	last  int       // the server of the latest attempt
	tried []attempt // the servers that failed the latest call, in order
}

// attempt is one server a call could not be served by.
type attempt struct {
	addr string
	err  error
}

func dialFailover(addrs []string, tls grpcx.TLS, opts ...grpc.DialOption) (*failoverConn, error) {
	f := &failoverConn{addrs: addrs}
	src, err := tls.Load()
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	var roles []string // with the cluster CA, only a server certificate is the coordinator
	if src != nil && src.HasCA() {
		roles = []string{tlsx.RoleServer}
	}
	for _, a := range addrs {
		cc, err := grpcx.NewClientFrom(a, tls, src, roles, opts...)
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("coordinator server %s: %w", a, err)
		}
		f.conns = append(f.conns, cc)
	}
	return f, nil
}

func (f *failoverConn) Close() error {
	var first error
	for _, cc := range f.conns {
		if err := cc.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// failover reports whether err from conns[i] lets the call go to the next
// server: the request was not served and nothing changed. A connection
// failure counts only when the connection was not up before the call
// either: a call that went out on a ready connection may have been
// applied, and is not sent again elsewhere.
func (f *failoverConn) failover(i int, before connectivity.State, err error) bool {
	if status.Code(err) != codes.Unavailable {
		return false
	}
	switch coordinator.ReasonOf(err) {
	case coordinator.ReasonNotApplied:
		return true
	case "":
		return before != connectivity.Ready && f.conns[i].GetState() != connectivity.Ready
	}
	return false
}

// each runs call against the servers in turn, from the current one, until
// one serves it (or answers with an error that is its answer).
func (f *failoverConn) each(ctx context.Context, call func(*grpc.ClientConn) error) error {
	f.mu.Lock()
	start := f.cur
	f.tried = nil
	f.mu.Unlock()
	var err error
	for n := range f.conns {
		i := (start + n) % len(f.conns)
		before := f.conns[i].GetState()
		err = call(f.conns[i])
		f.mu.Lock()
		f.last = i
		if err == nil || !f.failover(i, before, err) || ctx.Err() != nil {
			f.cur = i
			f.mu.Unlock()
			return err
		}
		f.tried = append(f.tried, attempt{addr: f.addrs[i], err: err})
		f.mu.Unlock()
	}
	return err
}

func (f *failoverConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return f.each(ctx, func(cc *grpc.ClientConn) error { return cc.Invoke(ctx, method, args, reply, opts...) })
}

// NewStream fails over only while opening the stream; a stream that breaks
// later is retried by its caller, which opens the next from the server
// that failed and so moves on.
func (f *failoverConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	var s grpc.ClientStream
	err := f.each(ctx, func(cc *grpc.ClientConn) error {
		var err error
		s, err = cc.NewStream(ctx, desc, method, opts...)
		return err
	})
	return s, err
}

// lastState is the connection state of the server the latest call went to.
func (f *failoverConn) lastState() connectivity.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns[f.last].GetState()
}

// where names the servers the latest call tried: the one address, or
// each with the reason it could not serve.
func (f *failoverConn) where() string {
	if len(f.addrs) == 1 {
		return f.addrs[0]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.tried) == 0 {
		return f.addrs[f.last]
	}
	parts := make([]string, 0, len(f.tried))
	for _, a := range f.tried {
		parts = append(parts, fmt.Sprintf("%s (%s)", a.addr, status.Convert(a.err).Message()))
	}
	return strings.Join(parts, ", ")
}
