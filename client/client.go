package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Defaults of Options.
const (
	DefaultRounds  = 5
	DefaultBackoff = 200 * time.Millisecond
	// MaxRequestIDPrefix bounds Options.RequestIDPrefix: with the 32
	// generated hex digits, a request id stays within the server's 128 bytes.
	MaxRequestIDPrefix = 64
	// maxBackoff caps the wait between two rounds of the servers.
	maxBackoff = 2 * time.Second
)

// Options configure a Client. Only Addrs is required.
type Options struct {
	// Addrs are the coordinator servers' gRPC addresses (host:port). With
	// several, a call moves on to the next by the retry rules of the
	// package documentation.
	Addrs []string

	// TLS switches TLS on with the system roots; it is implied by CAFile,
	// CertFile and KeyFile.
	TLS bool
	// CAFile verifies the servers' certificates. With it, only a
	// certificate of role "server" is accepted as a coordinator.
	CAFile string
	// CertFile and KeyFile are this client's certificate (mTLS).
	CertFile string
	KeyFile  string
	// ServerName overrides the name verified in the servers' certificates.
	ServerName string
	// TLSConfig, when set, is used as is instead of the fields above (which
	// must then be empty).
	TLSConfig *tls.Config

	// Token is the ACL token secret, sent as "authorization: Bearer" with
	// every call. Over a plaintext link it is readable on the wire.
	Token string

	// Timeout bounds each attempt of StartPause and StartBackup (0: only
	// ctx bounds it), so that an attempt that times out can be sent again
	// with the same request id within ctx. Other calls, which cannot be
	// sent again once a server may have acted on them, and streams are
	// bounded by their ctx alone.
	Timeout time.Duration
	// Rounds bounds how many times one call may try each server (default
	// DefaultRounds): at most Rounds × len(Addrs) attempts.
	Rounds int
	// Backoff is the wait after the first round of the servers (default
	// DefaultBackoff), doubled each round up to 2s: by default a call
	// waits out about 3s of elections.
	Backoff time.Duration

	// RequestIDPrefix is put before every request id the client generates
	// (StartPause, StartBackup), so the operation's request_id tells who
	// started it in audit logs (the CLI uses "cli-"). At most
	// MaxRequestIDPrefix bytes.
	RequestIDPrefix string

	// Logger receives one line per retry and reopened stream (nil: none).
	Logger *zap.Logger
}

// validate names every bad field.
func (o Options) validate() error {
	var errs []error
	if len(o.Addrs) == 0 {
		errs = append(errs, errors.New("client: Options.Addrs is empty: give at least one coordinator server host:port"))
	}
	for i, a := range o.Addrs {
		if a == "" {
			errs = append(errs, fmt.Errorf("client: Options.Addrs[%d] is empty: want host:port", i))
		}
	}
	if o.TLSConfig != nil && (o.CAFile != "" || o.CertFile != "" || o.KeyFile != "" || o.ServerName != "") {
		errs = append(errs, errors.New("client: Options.TLSConfig excludes CAFile, CertFile, KeyFile and ServerName: set one or the other"))
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		errs = append(errs, fmt.Errorf("client: Options.CertFile %q and KeyFile %q: give both or neither", o.CertFile, o.KeyFile))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("client: Options.Timeout %v: must not be negative", o.Timeout))
	}
	if o.Rounds < 0 {
		errs = append(errs, fmt.Errorf("client: Options.Rounds %d: must not be negative", o.Rounds))
	}
	if o.Backoff < 0 {
		errs = append(errs, fmt.Errorf("client: Options.Backoff %v: must not be negative", o.Backoff))
	}
	if len(o.RequestIDPrefix) > MaxRequestIDPrefix {
		errs = append(errs, fmt.Errorf("client: Options.RequestIDPrefix is %d bytes: at most %d", len(o.RequestIDPrefix), MaxRequestIDPrefix))
	}
	return errors.Join(errs...)
}

// Client is a connection to the coordinator servers. Every method of
// pb.CoordinatorServiceClient is promoted, and goes over the failover
// connection; WatchOperation and WatchAlarms are replaced by followers that
// resume after a disconnect (the raw streams stay at
// c.CoordinatorServiceClient.WatchOperation and .WatchAlarms). A Client is
// safe for concurrent use.
type Client struct {
	pb.CoordinatorServiceClient
	conn *conn
	log  *zap.Logger
}

// Dial builds a Client. It does no I/O (the first call connects), so it
// takes no context; it fails only on bad Options or unreadable TLS files.
func Dial(o Options) (*Client, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.Rounds == 0 {
		o.Rounds = DefaultRounds
	}
	if o.Backoff == 0 {
		o.Backoff = DefaultBackoff
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	opts := []grpc.DialOption{grpc.WithStatsHandler(sentTracker{})}
	if o.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(o.Token)))
	}
	t := grpcx.TLS{Enabled: o.TLS, CAFile: o.CAFile, CertFile: o.CertFile, KeyFile: o.KeyFile, ServerName: o.ServerName}
	src, err := t.Load()
	if err != nil {
		return nil, fmt.Errorf("client: TLS: %w", err)
	}
	var roles []string // with a CA, only a server certificate is the coordinator
	if src != nil && src.HasCA() {
		roles = []string{tlsx.RoleServer}
	}
	if o.TLSConfig != nil {
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(o.TLSConfig)))
	}
	cn := &conn{addrs: append([]string(nil), o.Addrs...), timeout: o.Timeout, maxAttempts: o.Rounds * len(o.Addrs), backoff: o.Backoff, idPrefix: o.RequestIDPrefix, log: log}
	for _, a := range o.Addrs {
		cc, err := grpcx.NewClientFrom(a, t, src, roles, opts...)
		if err != nil {
			_ = cn.Close()
			return nil, fmt.Errorf("client: coordinator server %s: %w", a, err)
		}
		cn.conns = append(cn.conns, cc)
	}
	return &Client{CoordinatorServiceClient: pb.NewCoordinatorServiceClient(cn), conn: cn, log: log}, nil
}

// Close closes the connections to every server.
func (c *Client) Close() error { return c.conn.Close() }

// Addrs are the servers the client dials, in the order it tries them.
func (c *Client) Addrs() []string { return append([]string(nil), c.conn.addrs...) }

// Conn is the failover connection, for a service client of another
// generated package over the same servers.
func (c *Client) Conn() grpc.ClientConnInterface { return c.conn }

// bearer sends an ACL token with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
