package client

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// dropProxy forwards plaintext gRPC (HTTP/2) between clients and one
// server, and counts the requests of method it forwards. Armed, it lets
// the next request of method through to the server, then discards what
// the server sends back on that connection and, once the server starts its
// response to that request (the handler has returned), calls onDrop and
// closes the connection: the request was served but its answer never
// reaches the client.
type dropProxy struct {
	t      testing.TB
	lis    net.Listener
	target string
	method string

	mu     sync.Mutex
	armed  bool
	onDrop func()
	seen   int // requests of method forwarded
	drops  int
}

func startDropProxy(t testing.TB, target, method string) *dropProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{t: t, lis: lis, target: target, method: method}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = lis.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.relay(c) })
		}
	})
	return p
}

func (p *dropProxy) Addr() string { return p.lis.Addr().String() }

// arm makes the next request of method one whose answer is dropped.
func (p *dropProxy) arm(onDrop func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed, p.onDrop = true, onDrop
}

func (p *dropProxy) counts() (seen, drops int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen, p.drops
}

// relay forwards one connection.
func (p *dropProxy) relay(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	var once sync.Once
	closeBoth := func() { once.Do(func() { _ = client.Close(); _ = server.Close() }) }
	defer closeBoth()
	var dropMu sync.Mutex
	dropStream := uint32(0) // the stream whose answer is dropped; 0: none
	done := make(chan struct{})
	go func() { // client -> server, decoding request headers
		defer close(done)
		defer closeBoth()
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(client, preface); err != nil {
			return
		}
		if _, err := server.Write(preface); err != nil {
			return
		}
		fr := http2.NewFramer(nil, io.TeeReader(client, server))
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			h, ok := f.(*http2.MetaHeadersFrame)
			if !ok || h.PseudoValue("path") != p.method {
				continue
			}
			p.mu.Lock()
			p.seen++
			if p.armed {
				p.armed = false
				dropMu.Lock()
				dropStream = h.StreamID
				dropMu.Unlock()
			}
			p.mu.Unlock()
		}
	}()
	// server -> client, frame by frame (9-byte header, then the payload).
	var hdr [9]byte
	for {
		if _, err := io.ReadFull(server, hdr[:]); err != nil {
			break
		}
		payload := make([]byte, int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2]))
		if _, err := io.ReadFull(server, payload); err != nil {
			break
		}
		typ, stream := http2.FrameType(hdr[3]), binary.BigEndian.Uint32(hdr[5:9])&0x7fffffff
		dropMu.Lock()
		dropping := dropStream
		dropMu.Unlock()
		if dropping != 0 {
			if typ == http2.FrameHeaders && stream == dropping {
				p.mu.Lock()
				p.drops++
				onDrop := p.onDrop
				p.mu.Unlock()
				if onDrop != nil {
					onDrop()
				}
				break
			}
			continue // discard: the client hears nothing more on this link
		}
		if _, err := client.Write(append(hdr[:], payload...)); err != nil {
			break
		}
	}
	closeBoth()
	<-done
}
