package stillpointv1

import "strings"

// ErrorDomain is the google.rpc.ErrorInfo domain of every CoordinatorService
// error; its reason is an ErrorReason's Reason().
const ErrorDomain = "coordinator.stillpoint.dev"

// reasonPrefix is what every ErrorReason value name starts with.
const reasonPrefix = "ERROR_REASON_"

// Reason is the ErrorInfo reason string of r: its value name without the
// "ERROR_REASON_" prefix (ERROR_REASON_CLUSTER_LOCKED -> "CLUSTER_LOCKED").
// ERROR_REASON_UNSPECIFIED and numbers the enum does not declare give "".
func (r ErrorReason) Reason() string {
	if r == ErrorReason_ERROR_REASON_UNSPECIFIED {
		return ""
	}
	name, ok := ErrorReason_name[int32(r)]
	if !ok {
		return ""
	}
	return strings.TrimPrefix(name, reasonPrefix)
}

// ParseErrorReason is the ErrorReason whose Reason() is s, or
// ERROR_REASON_UNSPECIFIED when s names none (a reason added by a newer
// server, or "").
func ParseErrorReason(s string) ErrorReason {
	if s == "" {
		return ErrorReason_ERROR_REASON_UNSPECIFIED
	}
	return ErrorReason(ErrorReason_value[reasonPrefix+s])
}

// AgentErrorDomain is the google.rpc.ErrorInfo domain of every AgentService
// error; its reason is an AgentErrorReason's Reason().
const AgentErrorDomain = "agent.stillpoint.dev"

// agentReasonPrefix is what every AgentErrorReason value name starts with.
const agentReasonPrefix = "AGENT_ERROR_REASON_"

// Reason is the ErrorInfo reason string of r: its value name without the
// "AGENT_ERROR_REASON_" prefix; "" for UNSPECIFIED and undeclared numbers.
func (r AgentErrorReason) Reason() string {
	name, ok := AgentErrorReason_name[int32(r)]
	if !ok || r == AgentErrorReason_AGENT_ERROR_REASON_UNSPECIFIED {
		return ""
	}
	return strings.TrimPrefix(name, agentReasonPrefix)
}

// ParseAgentErrorReason is the AgentErrorReason whose Reason() is s, or
// AGENT_ERROR_REASON_UNSPECIFIED when s names none.
func ParseAgentErrorReason(s string) AgentErrorReason {
	if s == "" {
		return AgentErrorReason_AGENT_ERROR_REASON_UNSPECIFIED
	}
	return AgentErrorReason(AgentErrorReason_value[agentReasonPrefix+s])
}
