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

// dropState is the state a set of dropProxies share: armed, the next
// request of method, on whichever proxy, is one whose successful answer is
// dropped.
type dropState struct {
	method string
	mu     sync.Mutex
	armed  bool
	onDrop func()
	seen   int // requests of method forwarded
	drops  int
}

// arm makes the next request of method that the server serves one whose
// answer is dropped; onDrop runs when that answer starts, before the
// connection is closed.
func (st *dropState) arm(onDrop func()) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.armed, st.onDrop = true, onDrop
}

func (st *dropState) counts() (seen, drops int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.seen, st.drops
}

// dropProxy forwards plaintext gRPC (HTTP/2) between clients and one
// server, and counts the requests of st.method it forwards. Armed, it lets
// the next such request through; when the server answers it with a
// success (response headers without END_STREAM: the handler returned a
// message), the answer is discarded, onDrop is called and the connection
// closed, so the request was served but the client never hears so. An
// error answer (trailers only) is forwarded and the state stays armed.
type dropProxy struct {
	lis    net.Listener
	target string
	st     *dropState
}

func startDropProxy(t testing.TB, target string, st *dropState) *dropProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{lis: lis, target: target, st: st}
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
			if !ok || h.PseudoValue("path") != p.st.method {
				continue
			}
			p.st.mu.Lock()
			p.st.seen++
			if p.st.armed {
				p.st.armed = false
				dropMu.Lock()
				dropStream = h.StreamID
				dropMu.Unlock()
			}
			p.st.mu.Unlock()
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
		typ, flags, stream := http2.FrameType(hdr[3]), http2.Flags(hdr[4]), binary.BigEndian.Uint32(hdr[5:9])&0x7fffffff
		dropMu.Lock()
		answer := dropStream != 0 && typ == http2.FrameHeaders && stream == dropStream
		if answer {
			dropStream = 0
		}
		dropMu.Unlock()
		if answer && flags.Has(http2.FlagHeadersEndStream) { // an error: pass it on, stay armed
			p.st.mu.Lock()
			p.st.armed = true
			p.st.mu.Unlock()
		} else if answer { // served: drop the answer and the connection
			p.st.mu.Lock()
			p.st.drops++
			onDrop := p.st.onDrop
			p.st.mu.Unlock()
			if onDrop != nil {
				onDrop()
			}
			break
		}
		if _, err := client.Write(append(hdr[:], payload...)); err != nil {
			break
		}
	}
	closeBoth()
	<-done
}
