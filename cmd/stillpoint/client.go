package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/client"
	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/config"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// defaultCoordinatorAddr is where a coordinator server listens by default.
const defaultCoordinatorAddr = "127.0.0.1:7400"

// Output formats of coordinator commands.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// clientFlags is the plumbing every coordinator command shares: where the
// coordinator is, TLS, output format and a per-call timeout. Each flag can
// also come from STILLPOINT_<FLAG> (STILLPOINT_ADDR, STILLPOINT_CA, ...).
type clientFlags struct {
	addr       string
	addrs      []string // addr split at commas, by prepare
	tls        bool
	ca         string
	cert       string
	key        string
	serverName string
	output     string
	timeout    time.Duration
	token      string
	tokenFile  string
	secret     string // the token in force, by prepare
}

// addClientFlags defines the shared flags on cmd and returns their values.
func addClientFlags(cmd *cobra.Command) *clientFlags {
	cf := &clientFlags{}
	f := cmd.Flags()
	f.StringVar(&cf.addr, "addr", defaultCoordinatorAddr, "coordinator server gRPC host:port, or several comma-separated (tried in turn on a connection failure or a not-applied answer) (env STILLPOINT_ADDR)")
	f.BoolVar(&cf.tls, "tls", false, "use TLS (implied by --ca, --cert, --key)")
	f.StringVar(&cf.ca, "ca", "", "CA bundle that verifies the server certificate")
	f.StringVar(&cf.cert, "cert", "", "client certificate (mTLS)")
	f.StringVar(&cf.key, "key", "", "client private key (mTLS)")
	f.StringVar(&cf.serverName, "tls-server-name", "", "name to verify in the server certificate")
	f.StringVarP(&cf.output, "output", "o", outputTable, "output format: table or json (protojson, proto field names)")
	f.DurationVar(&cf.timeout, "timeout", 10*time.Second, fmt.Sprintf("bound of each call, retries included; an attempt of pause or backup run gets half of it, at most %v, so one that times out is retried with the same request id", maxAttemptTimeout))
	f.StringVar(&cf.token, "token", "", "ACL token SECRET sent as the authorization Bearer header (env STILLPOINT_TOKEN; prefer the env or --token-file over the command line)")
	f.StringVar(&cf.tokenFile, "token-file", "", "file holding the ACL token secret (env STILLPOINT_TOKEN_FILE); --token wins when both are set")
	return cf
}

// prepare reads the environment into unset flags and checks the values.
func (cf *clientFlags) prepare(cmd *cobra.Command) error {
	var p config.Problems
	p.Merge("", config.BindEnv(cmd, config.EnvPrefix))
	switch cf.output {
	case outputTable, outputJSON:
	default:
		p.Addf("--output %q: want table or json", cf.output)
	}
	if cf.timeout <= 0 {
		p.Addf("--timeout %v: must be positive", cf.timeout)
	}
	if cf.addr == "" {
		p.Addf("--addr: must not be empty")
	} else {
		cf.addrs = splitAddrs(cf.addr, &p)
	}
	cf.secret = cf.token
	if cf.secret == "" && cf.tokenFile != "" {
		b, err := os.ReadFile(cf.tokenFile)
		if err != nil {
			p.Addf("--token-file: %v", err)
		}
		cf.secret = strings.TrimSpace(string(b))
	}
	if cf.secret != "" {
		if err := coordinator.CheckTokenSecret(cf.secret); err != nil {
			p.Addf("token (--token, STILLPOINT_TOKEN or --token-file): %v", err)
		}
	}
	return asUsage(p.Err())
}

// coordinatorClient is the client package's Client with the flags it was
// dialed with, for the messages.
type coordinatorClient struct {
	*client.Client
	cf *clientFlags
}

// dial prepares the flags and connects (no I/O until the first call).
func (cf *clientFlags) dial(cmd *cobra.Command) (*coordinatorClient, error) {
	if err := cf.prepare(cmd); err != nil {
		return nil, err
	}
	c, err := client.Dial(client.Options{
		Addrs: cf.addrs, TLS: cf.tls, CAFile: cf.ca, CertFile: cf.cert, KeyFile: cf.key, ServerName: cf.serverName,
		Token: cf.secret, Timeout: attemptTimeout(cf.timeout), RequestIDPrefix: cliRequestIDPrefix,
	})
	if err != nil {
		return nil, err
	}
	return &coordinatorClient{Client: c, cf: cf}, nil
}

// cliRequestIDPrefix starts the request id of every pause and backup the
// CLI starts, so the audit log tells them from other clients'.
const cliRequestIDPrefix = "cli-"

// maxAttemptTimeout caps the timeout of one attempt of a call.
const maxAttemptTimeout = 5 * time.Second

// attemptTimeout is the timeout of one StartPause or StartBackup attempt
// of a call bounded by timeout (--timeout): half of it, at most
// maxAttemptTimeout, so an attempt that times out (DEADLINE_EXCEEDED,
// retried with the same request id) leaves time for another. Other calls
// get all of --timeout (client.Options.Timeout).
func attemptTimeout(timeout time.Duration) time.Duration {
	return min(timeout/2, maxAttemptTimeout)
}

// call bounds one call, with its retries, by --timeout.
func (c *coordinatorClient) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cf.timeout)
}

// rpcError turns a call's error into a message that says what to do. It
// decides on the gRPC code, the coordinator's ErrorInfo reason and whether
// the request reached a server (client.Unreached), never on the message
// text. An error that is not a gRPC status (the CLI's own) passes through,
// prefixed with what.
func (c *coordinatorClient) rpcError(what string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", what, err)
	}
	unreached := client.Unreached(err)
	switch st.Code() {
	case codes.Unavailable:
		switch {
		case client.ReasonOf(err) == pb.ErrorReason_ERROR_REASON_NOT_APPLIED:
			return fmt.Errorf("%s: not served, nothing changed (%s): retry in a moment (a leader election or takeover may be under way)", what, c.notServed(st, err))
		case unreached:
			return fmt.Errorf("%s: cannot reach a coordinator server at %s (is `stillpoint server` running there? set --addr or STILLPOINT_ADDR): %s", what, c.where(err), st.Message())
		}
	case codes.DeadlineExceeded:
		if unreached {
			return fmt.Errorf("%s: cannot reach a coordinator server at %s within --timeout %v (is `stillpoint server` running there? set --addr or STILLPOINT_ADDR): %s", what, c.where(err), c.cf.timeout, st.Message())
		}
		return fmt.Errorf("%s: no answer from %s within --timeout %v (raise it?): %s", what, c.where(err), c.cf.timeout, st.Message())
	}
	if hint := reasonHint(err); hint != "" {
		return fmt.Errorf("%s: %s: %s\n  %s", what, st.Code(), st.Message(), hint)
	}
	return fmt.Errorf("%s: %s: %s", what, st.Code(), st.Message())
}

// notServed is the not-applied message, naming every server tried when
// there were several.
func (c *coordinatorClient) notServed(st *status.Status, err error) string {
	if len(c.cf.addrs) == 1 {
		return st.Message()
	}
	return "tried " + c.where(err)
}

// where names the servers err's call tried: the one address, or each with
// the last reason it could not serve.
func (c *coordinatorClient) where(err error) string {
	if len(c.cf.addrs) == 1 {
		return c.cf.addrs[0]
	}
	var ce *client.CallError
	if !errors.As(err, &ce) {
		return strings.Join(c.cf.addrs, ", ")
	}
	last := map[string]error{}
	for _, a := range ce.Attempts {
		last[a.Addr] = a.Err
	}
	servers := ce.Servers()
	parts := make([]string, 0, len(servers))
	for _, s := range servers {
		parts = append(parts, fmt.Sprintf("%s (%s)", s, status.Convert(last[s]).Message()))
	}
	return strings.Join(parts, ", ")
}

// printJSON writes msg as protojson with the .proto field names.
func printJSON(w io.Writer, msg proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true, Indent: "  "}.Marshal(msg)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// table writes rows under a header, aligned.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// unary is the shape of every coordinator command: dial, one call bounded
// by --timeout, an actionable error, then -o json (the API message) or the
// human view.
func unary[Resp proto.Message](cmd *cobra.Command, cf *clientFlags, what string,
	call func(ctx context.Context, c *coordinatorClient) (Resp, error),
	human func(Resp) error,
) error {
	c, err := cf.dial(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := c.call(cmd.Context())
	defer cancel()
	resp, err := call(ctx, c)
	if err != nil {
		return c.rpcError(what, err)
	}
	if cf.output == outputJSON {
		return printJSON(cmd.OutOrStdout(), resp)
	}
	return human(resp)
}

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
