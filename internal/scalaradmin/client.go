package scalaradmin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
	"github.com/stillpoint-dev/stillpoint/proto/rpc"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// DefaultServerPauseWait is what a server waits when max_pause_wait_time is
// left unset.
const DefaultServerPauseWait = 30 * time.Second

// Config describes the admin port of one node.
type Config struct {
	// Address is host:port of the node's admin port (Ledger 50053,
	// Auditor 40053 by default).
	Address string
	// TLS for the link (zero value: plaintext). ServerName overrides the
	// name checked in the node's certificate.
	TLS grpcx.TLS
	// TLSSource, when set, is TLS loaded by the caller, who may reload it
	// (new connections then use the new certificate).
	TLSSource *tlsx.Source
	// CallTimeout bounds every call. A Pause that waits for the drain gets
	// CallTimeout on top of its max wait (or of the server default, 30 s).
	CallTimeout time.Duration
}

// DefaultConfig: a local Ledger admin port, plaintext, 10 s per call.
func DefaultConfig() Config {
	return Config{Address: "127.0.0.1:50053", CallTimeout: 10 * time.Second}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Address == "" {
		errs = append(errs, errors.New("scalar-admin: empty address"))
	} else if _, port, err := net.SplitHostPort(c.Address); err != nil {
		errs = append(errs, fmt.Errorf("scalar-admin: address %q: %w", c.Address, err))
	} else if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		errs = append(errs, fmt.Errorf("scalar-admin: address %q: port %q is not a number in 1-65535", c.Address, port))
	}
	if c.CallTimeout <= 0 {
		errs = append(errs, fmt.Errorf("scalar-admin %s: call timeout %v must be positive", c.Address, c.CallTimeout))
	}
	if _, err := c.TLS.ClientConfig(); err != nil {
		errs = append(errs, fmt.Errorf("scalar-admin %s: TLS: %w", c.Address, err))
	}
	return errors.Join(errs...)
}

// PauseState is what CheckPaused learned about a node.
type PauseState int

// Pause states.
const (
	// Unknown: the server cannot say (a v1 server has no CheckPaused).
	Unknown PauseState = iota
	// Unpaused: the gate is open.
	Unpaused
	// Paused: the gate is closed.
	Paused
)

func (p PauseState) String() string {
	switch p {
	case Paused:
		return "paused"
	case Unpaused:
		return "unpaused"
	default:
		return "unknown"
	}
}

// Proto is p as the API's PausedState (Unknown -> PAUSED_STATE_UNKNOWN):
// the one mapping from what CheckPaused learned to what the agent reports
// over AgentService.Status and gossip.
func (p PauseState) Proto() pb.PausedState {
	switch p {
	case Paused:
		return pb.PausedState_PAUSED_STATE_PAUSED
	case Unpaused:
		return pb.PausedState_PAUSED_STATE_UNPAUSED
	default:
		return pb.PausedState_PAUSED_STATE_UNKNOWN
	}
}

// Client talks to one node's admin port. It is safe for concurrent use.
type Client struct {
	cfg  Config
	conn *grpc.ClientConn
	rpc  rpc.AdminClient
}

// New builds a client; it does no I/O (the connection is made on first use).
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var conn *grpc.ClientConn
	var err error
	if cfg.TLSSource != nil {
		conn, err = grpcx.NewClientFrom(cfg.Address, cfg.TLS, cfg.TLSSource, nil)
	} else {
		conn, err = grpcx.NewClient(cfg.Address, cfg.TLS)
	}
	if err != nil {
		return nil, fmt.Errorf("scalar-admin %s: %w", cfg.Address, err)
	}
	return &Client{cfg: cfg, conn: conn, rpc: rpc.NewAdminClient(conn)}, nil
}

// Address is the node's admin address.
func (c *Client) Address() string { return c.cfg.Address }

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Pause closes the node's gate. With waitOutstanding the call returns once
// in-flight requests drained, within maxWait (0 leaves the field unset: the
// server default, 30 s). Errors wrap one sentinel of this package.
func (c *Client) Pause(ctx context.Context, waitOutstanding bool, maxWait time.Duration) error {
	if maxWait < 0 {
		return &Error{Op: "Pause", Addr: c.cfg.Address, Class: ErrInvalidArgument,
			Msg: fmt.Sprintf("max wait %v is negative", maxWait)}
	}
	req := &rpc.PauseRequest{WaitOutstanding: waitOutstanding}
	timeout := c.cfg.CallTimeout
	if maxWait > 0 {
		ms := maxWait.Milliseconds()
		if ms == 0 {
			ms = 1
		}
		req.MaxPauseWaitTime = &ms
	}
	if waitOutstanding {
		if maxWait > 0 {
			timeout += maxWait
		} else {
			timeout += DefaultServerPauseWait
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := c.rpc.Pause(ctx, req)
	return c.classify("Pause", err)
}

// Unpause opens the node's gate (idempotent on the server).
func (c *Client) Unpause(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	_, err := c.rpc.Unpause(ctx, &emptypb.Empty{})
	return c.classify("Unpause", err)
}

// CheckPaused asks whether the node's gate is closed. A v1 server lacks the
// method: the answer is Unknown with an error wrapping ErrUnimplemented.
func (c *Client) CheckPaused(ctx context.Context) (PauseState, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	resp, err := c.rpc.CheckPaused(ctx, &emptypb.Empty{})
	if err != nil {
		cerr := c.classify("CheckPaused", err)
		var e *Error
		if errors.As(cerr, &e) && e.Class == ErrUnimplemented {
			e.Msg = "server is v1: no CheckPaused"
		}
		return Unknown, cerr
	}
	if resp.GetPaused() {
		return Paused, nil
	}
	return Unpaused, nil
}

// Stats returns a v1 server's statistics (JSON). A v2 server lacks the
// method: the error wraps ErrUnimplemented.
func (c *Client) Stats(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	resp, err := c.rpc.Stats(ctx, &emptypb.Empty{})
	if err != nil {
		cerr := c.classify("Stats", err)
		var e *Error
		if errors.As(cerr, &e) && e.Class == ErrUnimplemented {
			e.Msg = "server is v2: no Stats"
		}
		return "", cerr
	}
	return resp.GetStats(), nil
}
