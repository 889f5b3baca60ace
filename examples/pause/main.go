// Command pause runs one pause of a cluster through the Go client
// (github.com/stillpoint-dev/stillpoint/client) and prints its restore
// point: the example of "Automation from Go" in the README.
//
//	go run ./examples/pause --addr 127.0.0.1:7400 --ca ca.pem --cert client.pem \
//	    --key client-key.pem --token "$STILLPOINT_TOKEN" --cluster ledger
//
// Each flag defaults to its STILLPOINT_* variable (the export line that
// `stillpoint dev` prints). It prints the restore point (RFC 3339, UTC) on
// stdout, progress on stderr, and exits 1 when the pause is refused or
// fails, 3 when it ended without a restore point.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/stillpoint-dev/stillpoint/client"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func main() {
	addr := flag.String("addr", env("STILLPOINT_ADDR", "127.0.0.1:7400"), "coordinator servers, host:port[,host:port...]")
	ca := flag.String("ca", env("STILLPOINT_CA", ""), "CA bundle that verifies the servers")
	cert := flag.String("cert", env("STILLPOINT_CERT", ""), "client certificate (mTLS)")
	key := flag.String("key", env("STILLPOINT_KEY", ""), "client private key (mTLS)")
	token := flag.String("token", env("STILLPOINT_TOKEN", ""), "ACL token secret")
	cluster := flag.String("cluster", "", "cluster to pause (required)")
	wait := flag.Duration("wait", 5*time.Minute, "give up after this long (the pause goes on)")
	flag.Parse()
	if *cluster == "" {
		fmt.Fprintln(os.Stderr, "pause: --cluster is required (e.g. --cluster ledger)")
		os.Exit(2)
	}

	c, err := client.Dial(client.Options{
		Addrs:  strings.Split(*addr, ","),
		CAFile: *ca, CertFile: *cert, KeyFile: *key,
		Token:   *token,
		Timeout: 10 * time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "pause:", err)
		os.Exit(2)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *wait)
	defer cancel()

	op, err := c.Pause(ctx, &pb.StartPauseRequest{Cluster: *cluster, RequestedBy: "examples/pause"}, func(op *pb.Operation) error {
		fmt.Fprintf(os.Stderr, "%s %s\n", op.GetOpId(), op.GetState())
		return nil
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pause %s: %v (reason %s)\n", *cluster, err, client.ReasonOf(err).Reason())
		os.Exit(1)
	}
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		fmt.Fprintf(os.Stderr, "pause %s: operation %s ended %s: %s\n", *cluster, op.GetOpId(), op.GetState(), op.GetReason())
		os.Exit(3)
	}
	w := op.GetWindow()
	fmt.Printf("restore point %s ±%s (operation %s)\n", w.GetRestorePoint().AsTime().UTC().Format(time.RFC3339Nano),
		time.Duration(w.GetUncertaintyNs()), op.GetOpId())
}

// env is the variable's value, or def when it is unset.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
