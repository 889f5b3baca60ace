package coordinator

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// A connection handler mid-command (as Raft's transport runs a heartbeat
// that writes the current term) finishes before drain returns: the log is
// closed only after it. A handler that never lets go is reported.
func TestDrainStreamWaitsForConnectionHandlers(t *testing.T) {
	s, err := newDrainStream("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conn, err := s.Accept()
	if err != nil {
		t.Fatal(err)
	}
	reading := make(chan struct{})
	var wrote atomic.Bool
	go func() { // handleConn: read commands until the connection fails
		defer conn.Close()
		close(reading)
		buf := make([]byte, 1)
		for {
			if _, err := conn.Read(buf); err != nil {
				break
			}
		}
		wrote.Store(true) // the store write of a heartbeat in flight
	}()
	<-reading
	if !s.drain(10 * time.Second) {
		t.Fatal("drain timed out with a handler that returns once its connection closes")
	}
	if !wrote.Load() {
		t.Fatal("drain returned while a connection handler was still running")
	}
	if _, err := s.Accept(); err == nil {
		t.Fatal("Accept after drain succeeded")
	}

	// A handler that holds its connection is reported, within the bound.
	s2, err := newDrainStream("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := net.Dial("tcp", s2.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	held, err := s2.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if s2.drain(50 * time.Millisecond) {
		t.Fatal("drain reported every handler done while one still holds its connection")
	}
	_ = held.Close()
	if !s2.drain(10 * time.Second) {
		t.Fatal("drain timed out after the last handler closed its connection")
	}
}

// An unspecified bind address cannot be advertised to peers.
func TestDrainStreamRefusesUnadvertisableAddress(t *testing.T) {
	if _, err := newDrainStream("0.0.0.0:0", nil); err == nil {
		t.Fatal("0.0.0.0 accepted without an advertise address")
	}
}
