package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stillpoint-dev/stillpoint/client"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// reasonHint is what the CLI can add to a coordinator error from its
// ErrorInfo reason and metadata (never from the message): the next command
// to run. "" when it has nothing to add.
func reasonHint(err error) string {
	md := client.MetadataOf(err)
	nodes := strings.ReplaceAll(md["nodes"], ",", ", ")
	switch client.ReasonOf(err) {
	case pb.ErrorReason_ERROR_REASON_CLUSTER_LOCKED:
		op := md["op_id"]
		if strings.Contains(op, ",") {
			return fmt.Sprintf("cluster %s is held by ops %s; watch them with `stillpoint ops show OP_ID`", md["cluster"], op)
		}
		return fmt.Sprintf("cluster %s is held by op %s; watch it with `stillpoint ops show %s` (end it early with `stillpoint unpause --op %s`)", md["cluster"], op, op, op)
	case pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_DRIFT:
		return fmt.Sprintf("clock offsets spread %s apart, over max_drift %s (nodes %s); see %s", nsFigure(md["figure_ns"]), nsFigure(md["bound_ns"]), nodes, driftCommand(md))
	case pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_CLOCK:
		return fmt.Sprintf("a clock is unsynchronized or its error bound (worst %s) is over max_error_bound %s (nodes %s); see %s", nsFigure(md["figure_ns"]), nsFigure(md["bound_ns"]), nodes, driftCommand(md))
	case pb.ErrorReason_ERROR_REASON_ROSTER_MEMBER_ABSENT:
		return fmt.Sprintf("roster members without a live agent: %s; start their agents, or remove a node gone for good with `stillpoint members remove NODE`", nodes)
	case pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_AGENT:
		return fmt.Sprintf("agents that cannot take part: %s; see %s and `stillpoint members`", nodes, driftCommand(md))
	case pb.ErrorReason_ERROR_REASON_PERMISSION_DENIED_ROLE:
		return fmt.Sprintf("your token has role %s; this needs role %s: ask an admin for one (`stillpoint acl token create --role %s`)", md["role"], md["needed_role"], md["needed_role"])
	case pb.ErrorReason_ERROR_REASON_REQUEST_ID_CONFLICT, pb.ErrorReason_ERROR_REASON_OUTCOME_UNKNOWN:
		if op := md["op_id"]; op != "" {
			return fmt.Sprintf("see op %s with `stillpoint ops show %s`", op, op)
		}
	}
	return ""
}

// driftCommand is the drift command for the refusal's cluster.
func driftCommand(md map[string]string) string {
	if c := md["cluster"]; c != "" && !strings.Contains(c, ",") {
		return "`stillpoint drift --cluster " + c + "`"
	}
	return "`stillpoint drift`"
}

// nsFigure shows a metadata nanosecond figure as a duration.
func nsFigure(s string) string {
	ns, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return "?"
	}
	return timefmt.Duration(time.Duration(ns))
}
