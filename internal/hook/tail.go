package hook

import (
	"bytes"
	"sync"
)

// OutputTailBytes is how much of a hook's output is kept: the last 64 KiB
// of stdout and stderr interleaved.
const OutputTailBytes = 64 << 10

// tail is an io.Writer keeping only the last len(buf) bytes written; it
// is safe for one writer and concurrent readers.
type tail struct {
	mu    sync.Mutex
	buf   []byte
	limit int
	pos   int // next write position once buf is full
	full  bool
	total int64
}

func newTail(limit int) *tail { return &tail{limit: limit} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	t.total += int64(n)
	if !t.full {
		// Grow until the limit: a hook printing one line costs one line.
		room := t.limit - len(t.buf)
		if len(p) <= room {
			t.buf = append(t.buf, p...)
			t.full = len(t.buf) == t.limit
			return n, nil
		}
		if cap(t.buf) < t.limit {
			nb := make([]byte, len(t.buf), t.limit)
			copy(nb, t.buf)
			t.buf = nb
		}
		t.buf = append(t.buf, p[:room]...)
		p = p[room:]
		t.full = true
		t.pos = 0
	}
	if len(p) > t.limit {
		p = p[len(p)-t.limit:]
	}
	for len(p) > 0 {
		c := copy(t.buf[t.pos:], p)
		t.pos = (t.pos + c) % t.limit
		p = p[c:]
	}
	return n, nil
}

// snapshot returns a copy of the kept bytes in order and whether earlier
// output was dropped.
func (t *tail) snapshot() (out []byte, truncated bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.full {
		return bytes.Clone(t.buf), false
	}
	out = make([]byte, 0, t.limit)
	out = append(out, t.buf[t.pos:]...)
	out = append(out, t.buf[:t.pos]...)
	return out, t.total > int64(t.limit)
}

// lastLine is the last non-empty line of b, at most max bytes (its end).
func lastLine(b []byte, max int) string {
	b = bytes.TrimRight(b, "\r\n\t ")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	b = bytes.TrimSpace(b)
	if len(b) > max {
		b = append([]byte("…"), b[len(b)-max:]...)
	}
	return string(b)
}
