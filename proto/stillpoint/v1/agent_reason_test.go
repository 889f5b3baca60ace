package stillpointv1_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/stillpoint-dev/stillpoint/agent"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// The AgentErrorReason catalog documents exactly the reasons the agent
// sends, in the agent's domain, and round-trips like ErrorReason.
func TestAgentErrorReasonCatalog(t *testing.T) {
	if pb.AgentErrorDomain != agent.ErrorDomain {
		t.Fatalf("AgentErrorDomain %q, agent sends %q", pb.AgentErrorDomain, agent.ErrorDomain)
	}
	sent := []string{agent.ReasonStaleEpoch, agent.ReasonOpHeld, agent.ReasonInvalid, agent.ReasonNoSuchOp, agent.ReasonLeaseExpired,
		agent.ReasonOpEnded, agent.ReasonStopping, agent.ReasonPersistFailure, agent.ReasonNoSuchHook, agent.ReasonStepTaken,
		agent.ReasonNotReady, agent.ReasonCanceled, agent.ReasonInternal}
	var documented []string
	for n := range pb.AgentErrorReason_name {
		r := pb.AgentErrorReason(n)
		if r == pb.AgentErrorReason_AGENT_ERROR_REASON_UNSPECIFIED {
			continue
		}
		documented = append(documented, r.Reason())
		if got := pb.ParseAgentErrorReason(r.Reason()); got != r {
			t.Errorf("ParseAgentErrorReason(%q) = %v, want %v", r.Reason(), got, r)
		}
	}
	sort.Strings(sent)
	sort.Strings(documented)
	if strings.Join(sent, ",") != strings.Join(documented, ",") {
		t.Errorf("agent sends %v, errors.proto documents %v", sent, documented)
	}
	if pb.ParseAgentErrorReason("NOPE") != pb.AgentErrorReason_AGENT_ERROR_REASON_UNSPECIFIED || pb.AgentErrorReason(99).Reason() != "" {
		t.Error("unknown agent reasons must parse as UNSPECIFIED and print empty")
	}
}
