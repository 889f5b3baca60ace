// Package client is the Go client of the Stillpoint coordinator API
// (stillpoint.v1.CoordinatorService). The stillpoint CLI is built on it.
//
// A Client dials one or several coordinator servers and exposes the
// generated pb.CoordinatorServiceClient for every method, over a connection
// that follows the leader: any server forwards writes to the leader, so the
// client only has to move on to another server when one is down or answers
// NOT_APPLIED. It retries by the rules below, generates the request id that
// makes StartPause and StartBackup safe to retry, and follows an operation
// to its end across disconnects (WatchOperation, Pause).
//
//	c, err := client.Dial(client.Options{
//		Addrs:    []string{"10.0.0.5:7400", "10.0.0.6:7400", "10.0.0.7:7400"},
//		CAFile:   "ca.pem",
//		CertFile: "client.pem",
//		KeyFile:  "client-key.pem",
//		Token:    os.Getenv("STILLPOINT_TOKEN"),
//		Timeout:  10 * time.Second,
//	})
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	op, err := c.Pause(ctx, &pb.StartPauseRequest{Cluster: "ledger"}, nil)
//	if err != nil {
//		return err
//	}
//	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
//		return fmt.Errorf("pause %s ended %s: %s", op.GetOpId(), op.GetState(), op.GetReason())
//	}
//	fmt.Println(op.GetWindow().GetRestorePoint().AsTime())
//
// # Retry rules
//
// A call goes to the server that served the client's previous call (the
// first address at start). When an attempt fails, the call is sent again,
// to the next server in address order, only when one of these holds:
//
//  1. The call certainly was not applied: the request never left this
//     client (no connection could be established to the server, so the
//     attempt ended UNAVAILABLE, or its Timeout ran out, before the request
//     was written), or the server answered UNAVAILABLE with reason
//     NOT_APPLIED (no leader, not the leader, still taking over: nothing
//     changed). This holds for every method.
//  2. The method carries a request id (StartPause, StartBackup) and the
//     outcome is unknown: a connection dropped after the request went out,
//     here or between the server and the leader (UNAVAILABLE without a
//     reason, or with OUTCOME_UNKNOWN or SHUTTING_DOWN), the attempt's
//     Timeout or the server's apply timeout ran out (DEADLINE_EXCEEDED), or
//     the leader lost leadership while committing (UNKNOWN with reason
//     OUTCOME_UNKNOWN, or without a reason from an older server). The client
//     always sends a request id (it generates one when the request has
//     none), so a retry of a request the server did record returns the
//     operation the first attempt started instead of starting another.
//
// Any other answer is the call's answer and is returned as is. A call tries
// each server at most Options.Rounds times; after each round of the servers
// it waits Options.Backoff, doubled every round up to 2s, and never past the
// caller's context (by default about 3s of elections are waited out). A call the client gave up
// on returns a *CallError naming every attempt; status.FromError, status.Code
// and ReasonOf read the last attempt's status through it.
//
// A caller that retries a StartPause or StartBackup itself, after a
// *CallError, must send the request id the failed call carried
// (CallError.RequestID) or set request_id itself before the first call: a
// retry with a new id may start a second operation if the first one was
// applied after all. Options.RequestIDPrefix marks the ids the client
// generates (the CLI's start with "cli-").
//
// Streams (WatchOperation, WatchAlarms) move on by the same rules while
// they are being opened; Client.WatchOperation and Client.WatchAlarms also
// reopen a stream that breaks later (UNAVAILABLE, NOT_APPLIED, or CANCELED
// or DEADLINE_EXCEEDED while the caller's ctx is live), with the same
// backoff, and end with any other error. Each watch ends the streams it
// opened before it returns.
//
// # Errors
//
// Every coordinator error carries a gRPC code and a reason from the
// ErrorReason catalog (proto/stillpoint/v1/errors.proto). Switch on
// status.Code(err) and ReasonOf(err), never on the message text.
package client
