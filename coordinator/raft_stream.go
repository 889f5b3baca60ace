package coordinator

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// errStreamClosed is Accept's answer once the stream layer drained.
var errStreamClosed = errors.New("raft stream layer closed")

// drainStream is Raft's TCP stream layer (as raft.NewTCPTransport builds
// it) that also tracks the connections it accepted. Raft's network
// transport runs a heartbeat on the accepting connection's goroutine, not
// on one Raft.Shutdown waits for, and a heartbeat of a newer term writes
// the current term to the stable store: a store closed under it panics
// Raft ("failed to save current term: closed"). drain closes every
// accepted connection and waits until each handler let go of its own, so
// the store is closed only once no handler can reach it.
type drainStream struct {
	net.Listener
	advertise net.Addr
	// tls, when set, wraps every connection (raft_tls.go).
	tls *raftTLS

	mu      sync.Mutex
	closed  bool
	conns   map[*drainConn]struct{}
	handled sync.WaitGroup
}

func newDrainStream(bindAddr string, advertise net.Addr) (*drainStream, error) {
	lis, err := net.Listen("tcp", bindAddr)
	if err != nil {
		return nil, err
	}
	s := &drainStream{Listener: lis, advertise: advertise, conns: map[*drainConn]struct{}{}}
	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok || addr.IP == nil || addr.IP.IsUnspecified() {
		_ = lis.Close()
		return nil, fmt.Errorf("raft address %v is not advertisable (set a raft advertise address)", s.Addr())
	}
	return s, nil
}

// Accept implements net.Listener, tracking the connection until its
// handler closes it.
func (s *drainStream) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, errStreamClosed
	}
	dc := &drainConn{Conn: c, raw: c, s: s}
	if s.tls != nil {
		dc.Conn = s.tls.server(c)
	}
	s.conns[dc] = struct{}{}
	s.handled.Add(1)
	return dc, nil
}

// Addr is the advertised address, else the listener's.
func (s *drainStream) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.Listener.Addr()
}

// Dial implements raft.StreamLayer.
func (s *drainStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil || s.tls == nil {
		return c, err
	}
	return s.tls.client(c, string(address), timeout)
}

// drain stops accepting, closes every accepted connection (a handler
// blocked reading its next command returns) and waits up to timeout until
// every handler closed its own. It reports whether they all did.
func (s *drainStream) drain(timeout time.Duration) bool {
	_ = s.Listener.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.raw.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.handled.Wait(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// drainConn is an accepted connection; its handler's Close marks it done.
type drainConn struct {
	net.Conn
	raw  net.Conn // the TCP connection under a TLS one
	s    *drainStream
	once sync.Once
}

// Read reports a connection closed by drain as io.EOF, the end Raft's
// transport expects of a connection, rather than an error it logs.
func (c *drainConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && errors.Is(err, net.ErrClosed) && c.s.draining() {
		err = io.EOF
	}
	return n, err
}

func (s *drainStream) draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (c *drainConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.handled.Done()
	})
	return err
}
