package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/client"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Dial three servers over mTLS with an ACL token, run a pause and print
// its restore point.
func Example() {
	c, err := client.Dial(client.Options{
		Addrs:    []string{"10.0.0.5:7400", "10.0.0.6:7400", "10.0.0.7:7400"},
		CAFile:   "ca.pem",
		CertFile: "client.pem",
		KeyFile:  "client-key.pem",
		Token:    os.Getenv("STILLPOINT_TOKEN"),
		Timeout:  10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	op, err := c.Pause(ctx, &pb.StartPauseRequest{Cluster: "ledger"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		log.Fatalf("pause %s ended %s: %s", op.GetOpId(), op.GetState(), op.GetReason())
	}
	fmt.Println(op.GetWindow().GetRestorePoint().AsTime().Format(time.RFC3339Nano))
}

// Follow an operation started elsewhere, printing each state it reaches.
// The watch resumes by itself after a disconnect or a server going away.
func ExampleClient_WatchOperation() {
	c, err := client.Dial(client.Options{Addrs: []string{"127.0.0.1:7400"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	final, err := c.WatchOperation(context.Background(), "op-20260101T000000.000Z-0a1b2c3d", func(op *pb.Operation) error {
		fmt.Println(op.GetState())
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ended", final.GetState())
}

// Act on a refusal by its code and reason, never its message.
func ExampleReasonOf() {
	c, err := client.Dial(client.Options{Addrs: []string{"127.0.0.1:7400"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_, err = c.StartPause(context.Background(), &pb.StartPauseRequest{Cluster: "ledger"})
	switch {
	case err == nil:
	case client.ReasonOf(err) == pb.ErrorReason_ERROR_REASON_CLUSTER_LOCKED:
		fmt.Println("operation", client.MetadataOf(err)["op_id"], "holds ledger; wait for it")
	case client.ReasonOf(err) == pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_DRIFT:
		fmt.Println("clocks too far apart to pause now")
	case client.Unreached(err):
		fmt.Println("no coordinator server answered")
	case status.Code(err) == codes.Unauthenticated:
		fmt.Println("set STILLPOINT_TOKEN")
	default:
		var ce *client.CallError
		if errors.As(err, &ce) {
			fmt.Println("gave up after", len(ce.Attempts), "attempts on", ce.Servers())
		}
	}
}
