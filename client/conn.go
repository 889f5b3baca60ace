package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// conn is a grpc.ClientConnInterface over several coordinator servers that
// retries by the rules of the package documentation (retryable).
type conn struct {
	addrs       []string
	conns       []*grpc.ClientConn
	timeout     time.Duration
	maxAttempts int
	backoff     time.Duration
	idPrefix    string // put before every generated request id
	log         *zap.Logger

	mu  sync.Mutex
	cur int // the server the next call starts at
}

var _ grpc.ClientConnInterface = (*conn)(nil)

func (c *conn) Close() error {
	var first error
	for _, cc := range c.conns {
		if err := cc.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (c *conn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	args, id := withRequestID(args, c.idPrefix)
	err := c.run(ctx, method, func(ctx context.Context, cc *grpc.ClientConn) error {
		// Only a call with a request id may be sent again after an attempt
		// timed out (the retry returns the same op); any other call keeps
		// all of ctx for its one attempt that reaches a server.
		if c.timeout > 0 && id != "" {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.timeout)
			defer cancel()
		}
		return cc.Invoke(ctx, method, args, reply, opts...)
	})
	if ce, ok := err.(*CallError); ok {
		ce.RequestID = id
	}
	return err
}

// NewStream moves on by the retry rules only while the stream is being
// opened; Client.WatchOperation and Client.WatchAlarms reopen a stream that
// breaks later.
func (c *conn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	var s grpc.ClientStream
	err := c.run(ctx, method, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		s, err = cc.NewStream(ctx, desc, method, opts...)
		return err
	})
	return s, err
}

// run makes the attempts of one call.
func (c *conn) run(ctx context.Context, method string, attempt func(context.Context, *grpc.ClientConn) error) error {
	c.mu.Lock()
	start := c.cur
	c.mu.Unlock()
	n := len(c.conns)
	var tried []Attempt
	for k := 0; ; k++ {
		i := (start + k) % n
		if k > 0 && k%n == 0 && !c.wait(ctx, k/n) {
			return &CallError{Method: method, Attempts: tried}
		}
		var sent atomic.Bool
		err := attempt(context.WithValue(ctx, sentKey{}, &sent), c.conns[i])
		if err == nil {
			c.setCur(i)
			return nil
		}
		a := Attempt{Addr: c.addrs[i], Err: err, Sent: sent.Load()}
		tried = append(tried, a)
		retry := ctx.Err() == nil && retryable(method, a)
		if retry && n > 1 {
			c.setCur((i + 1) % n) // leave a server that could not serve
		} else {
			c.setCur(i)
		}
		if !retry || k+1 >= c.maxAttempts {
			return &CallError{Method: method, Attempts: tried}
		}
		c.log.Info("coordinator call not served; retrying", zap.String("method", method), zap.String("server", a.Addr),
			zap.Stringer("code", status.Code(err)), zap.String("reason", ReasonOf(err).Reason()), zap.Bool("sent", a.Sent),
			zap.Int("attempt", k+1), zap.String("next", c.addrs[(i+1)%n]))
	}
}

func (c *conn) setCur(i int) {
	c.mu.Lock()
	c.cur = i
	c.mu.Unlock()
}

// wait sleeps before round r (1, 2, ...) of the servers; false when ctx
// ended first.
func (c *conn) wait(ctx context.Context, r int) bool {
	d := c.backoff << (r - 1)
	if d > maxBackoff || d <= 0 {
		d = maxBackoff
	}
	return sleep(ctx, d)
}

// retryable is the retry rule (package documentation): whether the failed
// attempt a of method may be sent again.
func retryable(method string, a Attempt) bool {
	code, reason := status.Code(a.Err), ReasonOf(a.Err)
	switch {
	case code == codes.Unavailable && reason == pb.ErrorReason_ERROR_REASON_NOT_APPLIED:
		return true // the server says nothing changed
	case !a.Sent && (code == codes.Unavailable || code == codes.DeadlineExceeded):
		return true // the request never left this client
	case !carriesRequestID(method):
		return false
	}
	switch code { // outcome unknown: the request id makes a resend safe
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	case codes.Unknown:
		return reason == pb.ErrorReason_ERROR_REASON_OUTCOME_UNKNOWN || reason == pb.ErrorReason_ERROR_REASON_UNSPECIFIED
	}
	return false
}

// carriesRequestID reports whether method's request carries a request id
// the server deduplicates on.
func carriesRequestID(method string) bool {
	return method == pb.CoordinatorService_StartPause_FullMethodName || method == pb.CoordinatorService_StartBackup_FullMethodName
}

// withRequestID returns a copy of a StartPause or StartBackup request that
// has no request id, with a new one (prefix, then NewRequestID), and the
// request id the request is sent with; any other args as they are, and "".
func withRequestID(args any, prefix string) (any, string) {
	switch req := args.(type) {
	case *pb.StartPauseRequest:
		if req.GetRequestId() == "" {
			req = proto.Clone(req).(*pb.StartPauseRequest)
			req.RequestId = prefix + NewRequestID()
		}
		return req, req.GetRequestId()
	case *pb.StartBackupRequest:
		if req.GetRequestId() == "" {
			req = proto.Clone(req).(*pb.StartBackupRequest)
			req.RequestId = prefix + NewRequestID()
		}
		return req, req.GetRequestId()
	}
	return args, ""
}

// NewRequestID returns a new random request id (32 hex digits): a
// StartPause or StartBackup sent again with it returns the operation the
// first one started. The client sets one on every such request that has
// none; set your own to retry across processes.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Attempt is one attempt of a call the client gave up on.
type Attempt struct {
	// Addr is the server the attempt went to.
	Addr string
	// Err is its error (a gRPC status error).
	Err error
	// Sent reports whether the request may have reached the server: false
	// when no connection carried it.
	Sent bool
}

// CallError is the error of a call the client gave up on. It reads as the
// last attempt's gRPC status (status.FromError, status.Code, ReasonOf) and
// names every attempt.
type CallError struct {
	// Method is the full gRPC method name.
	Method string
	// Attempts are every attempt, in order; there is at least one.
	Attempts []Attempt
	// RequestID is the request id every attempt of a StartPause or
	// StartBackup carried (the caller's, or the one the client generated);
	// "" for other methods. A caller that retries the call after this error
	// must send this id (StartPauseRequest.RequestId), or it may start a
	// second operation.
	RequestID string
}

func (e *CallError) last() Attempt { return e.Attempts[len(e.Attempts)-1] }

// Error is the last attempt's error, with the servers tried when there
// were several attempts.
func (e *CallError) Error() string {
	if len(e.Attempts) == 1 {
		return e.last().Err.Error()
	}
	return fmt.Sprintf("%v (%d attempts: %s)", e.last().Err, len(e.Attempts), strings.Join(e.Servers(), ", "))
}

// Unwrap is the last attempt's error.
func (e *CallError) Unwrap() error { return e.last().Err }

// GRPCStatus is the last attempt's status, unchanged.
func (e *CallError) GRPCStatus() *status.Status { return status.Convert(e.last().Err) }

// Servers are the servers tried, each once, in order.
func (e *CallError) Servers() []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range e.Attempts {
		if !seen[a.Addr] {
			seen[a.Addr] = true
			out = append(out, a.Addr)
		}
	}
	return out
}

// Unreached reports whether err is a call that reached no server: every
// attempt ended UNAVAILABLE or DEADLINE_EXCEEDED before its request left
// this client (a wrong address, a server down, a TLS handshake refused).
func Unreached(err error) bool {
	var ce *CallError
	if !asCallError(err, &ce) {
		return false
	}
	for _, a := range ce.Attempts {
		if a.Sent {
			return false
		}
		if c := status.Code(a.Err); c != codes.Unavailable && c != codes.DeadlineExceeded {
			return false
		}
	}
	return true
}

// sentKey carries an attempt's *atomic.Bool, set once its request headers
// were written to a connection.
type sentKey struct{}

// sentTracker is the stats handler that tells a request that left this
// client from one that never found a connection.
type sentTracker struct{}

func (sentTracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (sentTracker) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.OutHeader); ok {
		if sent, ok := ctx.Value(sentKey{}).(*atomic.Bool); ok {
			sent.Store(true)
		}
	}
}

func (sentTracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (sentTracker) HandleConn(context.Context, stats.ConnStats) {}
