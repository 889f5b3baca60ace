package ntptest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// BadPacket selects how a server in bad-packet mode breaks its replies.
type BadPacket int

// Bad-packet modes; each is one reason a client must reject a reply.
const (
	BadPacketNone BadPacket = iota
	// BadPacketShort sends 12 bytes instead of 48.
	BadPacketShort
	// BadPacketWrongOrigin does not echo the client's transmit timestamp.
	BadPacketWrongOrigin
	// BadPacketWrongMode answers in mode 3 (client) instead of 4.
	BadPacketWrongMode
	// BadPacketZeroTransmit sends a transmit timestamp of zero.
	BadPacketZeroTransmit
	// BadPacketImpossible stamps the receive time 100 ms early, so the
	// server processing time T3−T2 exceeds the round trip T4−T1 (what
	// chrony under libfaketime answers): a well-formed, impossible reply.
	BadPacketImpossible
)

// ImpossibleShift is how far BadPacketImpossible moves the receive stamp.
const ImpossibleShift = 100 * time.Millisecond

var badPacketNames = map[BadPacket]string{
	BadPacketNone:         "none",
	BadPacketShort:        "short",
	BadPacketWrongOrigin:  "wrong-origin",
	BadPacketWrongMode:    "wrong-mode",
	BadPacketZeroTransmit: "zero-transmit",
	BadPacketImpossible:   "impossible",
}

func (b BadPacket) String() string {
	if s, ok := badPacketNames[b]; ok {
		return s
	}
	return fmt.Sprintf("BadPacket(%d)", int(b))
}

// ParseBadPacket is the inverse of String (for CLI flags).
func ParseBadPacket(s string) (BadPacket, error) {
	for k, v := range badPacketNames {
		if v == s {
			return k, nil
		}
	}
	names := make([]string, 0, len(badPacketNames))
	for k := BadPacketNone; int(k) < len(badPacketNames); k++ {
		names = append(names, badPacketNames[k])
	}
	return 0, fmt.Errorf("bad-packet mode %q: want one of %s", s, strings.Join(names, ", "))
}

// Settings is everything about a server's answers; change it at run time
// with (*Server).Update.
type Settings struct {
	// Offset of the server's clock from the real (host) clock.
	Offset         time.Duration
	Stratum        uint8
	RootDelay      time.Duration
	RootDispersion time.Duration
	// Precision as a log2 of seconds (-20 ≈ 1 µs).
	Precision int8
	Leap      uint8
	// KissCode, when set (RATE, DENY, RSTR, ...), makes every reply a
	// kiss-of-death: stratum 0 with the code as reference id.
	KissCode string
	// Latency delays every reply, on the request path: the server stamps
	// its receive time only after the delay, so a client sees an asymmetric
	// path (its offset shifts by Latency/2, which RTT/2 covers).
	Latency time.Duration
	// Drop: receive requests but never answer (clients time out).
	Drop      bool
	BadPacket BadPacket
	// Liar: each reply uses Offset plus a random error of LiarMin to
	// LiarMin+LiarSpread, random sign, so the server is a falseticker.
	Liar       bool
	LiarMin    time.Duration
	LiarSpread time.Duration
}

// DefaultSettings is an honest stratum-1 server on the real clock.
func DefaultSettings() Settings {
	return Settings{
		Stratum:    1,
		Precision:  -20,
		LiarMin:    200 * time.Millisecond,
		LiarSpread: 800 * time.Millisecond,
	}
}

// Validate reports every problem with s.
func (s Settings) Validate() error {
	var errs []error
	if s.Leap > 3 {
		errs = append(errs, fmt.Errorf("leap %d: want 0-3", s.Leap))
	}
	if s.RootDelay < 0 || s.RootDispersion < 0 {
		errs = append(errs, fmt.Errorf("root delay %v / dispersion %v: must not be negative", s.RootDelay, s.RootDispersion))
	}
	if s.Latency < 0 {
		errs = append(errs, fmt.Errorf("latency %v: must not be negative", s.Latency))
	}
	if len(s.KissCode) > 4 {
		errs = append(errs, fmt.Errorf("kiss code %q: at most 4 ASCII characters", s.KissCode))
	}
	if s.Liar && (s.LiarMin <= 0 || s.LiarSpread < 0) {
		errs = append(errs, fmt.Errorf("liar min %v / spread %v: min must be positive, spread not negative", s.LiarMin, s.LiarSpread))
	}
	if s.BadPacket < BadPacketNone || s.BadPacket > BadPacketImpossible {
		errs = append(errs, fmt.Errorf("bad-packet mode %d unknown", int(s.BadPacket)))
	}
	return errors.Join(errs...)
}

// Config configures Start.
type Config struct {
	// Addr to listen on (UDP); default 127.0.0.1:0.
	Addr     string
	Settings Settings
	// Now is the real clock the offset is applied to; default time.Now.
	Now    func() time.Time
	Logger *zap.Logger
}

// DefaultConfig listens on a free loopback port with DefaultSettings.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:0", Settings: DefaultSettings()}
}

// Server is a running NTP server.
type Server struct {
	conn   *net.UDPConn
	now    func() time.Time
	log    *zap.Logger
	wg     sync.WaitGroup
	closed atomic.Bool

	mu       sync.Mutex
	settings Settings
	rng      *rand.Rand

	requests atomic.Uint64
	replies  atomic.Uint64
}

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if err := cfg.Settings.Validate(); err != nil {
		return nil, fmt.Errorf("ntptest %s: %w", cfg.Addr, err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	ua, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ntptest: resolve %s: %w", cfg.Addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("ntptest: listen %s: %w", cfg.Addr, err)
	}
	s := &Server{
		conn:     conn,
		now:      cfg.Now,
		settings: cfg.Settings,
		rng:      rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	s.log = cfg.Logger.With(zap.String("ntp_server", s.Addr()))
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.conn.LocalAddr().String() }

// Settings returns the settings in force.
func (s *Server) Settings() Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings
}

// Update changes the settings atomically; an invalid result is rejected
// and changes nothing.
func (s *Server) Update(f func(*Settings)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.settings
	f(&next)
	if err := next.Validate(); err != nil {
		return fmt.Errorf("ntptest %s: %w", s.Addr(), err)
	}
	s.settings = next
	return nil
}

// Requests is how many well-formed requests the server has received
// (answered or not).
func (s *Server) Requests() uint64 { return s.requests.Load() }

// Replies is how many replies the server has sent.
func (s *Server) Replies() uint64 { return s.replies.Load() }

// Close stops the server and waits for in-flight replies.
func (s *Server) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	err := s.conn.Close()
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		recv := s.now()
		if err != nil {
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("ntptest read failed", zap.Error(err))
			continue
		}
		req, err := ParseRequest(buf[:n])
		if err != nil {
			s.log.Debug("ntptest ignored malformed request", zap.Error(err), zap.Stringer("from", from))
			continue
		}
		s.requests.Add(1)
		st := s.Settings()
		if st.Drop {
			continue
		}
		if st.Latency <= 0 {
			s.reply(req, recv, st, from)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			t := time.NewTimer(st.Latency)
			defer t.Stop()
			<-t.C
			s.reply(req, s.now(), st, from)
		}()
	}
}

func (s *Server) reply(req Request, recv time.Time, st Settings, to netip.AddrPort) {
	off := st.Offset
	if st.Liar {
		off += s.lie(st)
	}
	version := req.Version
	if version < 3 {
		version = 4
	}
	resp := Response{
		Leap:           st.Leap,
		Version:        version,
		Stratum:        st.Stratum,
		Poll:           min(max(req.Poll, 4), 17),
		Precision:      st.Precision,
		RootDelay:      st.RootDelay,
		RootDispersion: st.RootDispersion,
		RefID:          refID("LOCL"),
		Origin:         req.Transmit,
		Receive:        recv.Add(off),
	}
	if st.BadPacket == BadPacketImpossible {
		resp.Receive = resp.Receive.Add(-ImpossibleShift)
	}
	switch {
	case st.KissCode != "":
		resp.Stratum = 0
		resp.RefID = refID(st.KissCode)
	case st.Stratum == 0:
		resp.RefID = [4]byte{} // unspecified, not a kiss code
	}
	resp.Transmit = s.now().Add(off)
	resp.Reference = resp.Transmit.Add(-time.Second)
	b := resp.Marshal()
	switch st.BadPacket {
	case BadPacketShort:
		b = b[:12]
	case BadPacketWrongOrigin:
		b[24] ^= 0xff
	case BadPacketWrongMode:
		b[0] = b[0]&^0x7 | ModeClient
	case BadPacketZeroTransmit:
		clear(b[40:48])
	}
	if _, err := s.conn.WriteToUDPAddrPort(b, to); err != nil {
		if !s.closed.Load() {
			s.log.Warn("ntptest reply failed", zap.Error(err))
		}
		return
	}
	s.replies.Add(1)
}

func (s *Server) lie(st Settings) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := st.LiarMin
	if st.LiarSpread > 0 {
		d += time.Duration(s.rng.Int64N(int64(st.LiarSpread)))
	}
	if s.rng.IntN(2) == 0 {
		d = -d
	}
	return d
}
