package coordinator

import (
	"strings"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// methodRole is what a method needs of its caller.
type methodRole int

const (
	// rolePublic: no token (bootstrap, server info, health).
	rolePublic methodRole = iota
	roleRead
	roleOperate
	roleAdmin
	// roleServer: only another coordinator server (its certificate, or the
	// ACL server secret) forwarding a call.
	roleServer
)

func (r methodRole) String() string {
	return [...]string{"public", "read", "operate", "admin", "server"}[r]
}

// roleOf maps a token's role onto methodRole.
func roleOf(r pb.ACLRole) methodRole {
	switch r {
	case pb.ACLRole_ACL_ROLE_READ:
		return roleRead
	case pb.ACLRole_ACL_ROLE_OPERATE:
		return roleOperate
	case pb.ACLRole_ACL_ROLE_ADMIN:
		return roleAdmin
	}
	return rolePublic
}

// methodRoles is the role every CoordinatorService method needs. A method
// missing here is refused (and TestEveryMethodHasARole fails), so a new
// RPC cannot be left open by accident.
var methodRoles = map[string]methodRole{
	pb.CoordinatorService_ListMembers_FullMethodName:        roleRead,
	pb.CoordinatorService_GetDrift_FullMethodName:           roleRead,
	pb.CoordinatorService_RemoveRosterMember_FullMethodName: roleAdmin,
	pb.CoordinatorService_StartPause_FullMethodName:         roleOperate,
	pb.CoordinatorService_ForceUnpause_FullMethodName:       roleOperate,
	pb.CoordinatorService_GetOperation_FullMethodName:       roleRead,
	pb.CoordinatorService_ListOperations_FullMethodName:     roleRead,
	pb.CoordinatorService_WatchOperation_FullMethodName:     roleRead,
	pb.CoordinatorService_ListRestorePoints_FullMethodName:  roleRead,
	pb.CoordinatorService_GetRestorePoint_FullMethodName:    roleRead,
	pb.CoordinatorService_GetConfig_FullMethodName:          roleRead,
	pb.CoordinatorService_UpdateConfig_FullMethodName:       roleAdmin,
	pb.CoordinatorService_ListAlarms_FullMethodName:         roleRead,
	pb.CoordinatorService_WatchAlarms_FullMethodName:        roleRead,
	pb.CoordinatorService_ListAudit_FullMethodName:          roleRead,
	pb.CoordinatorService_SetBackupPlan_FullMethodName:      roleAdmin,
	pb.CoordinatorService_GetBackupPlan_FullMethodName:      roleRead,
	pb.CoordinatorService_ListBackupPlans_FullMethodName:    roleRead,
	pb.CoordinatorService_DeleteBackupPlan_FullMethodName:   roleAdmin,
	pb.CoordinatorService_StartBackup_FullMethodName:        roleOperate,
	pb.CoordinatorService_ListBackups_FullMethodName:        roleRead,
	pb.CoordinatorService_GetBackup_FullMethodName:          roleRead,
	pb.CoordinatorService_GetRestorePlan_FullMethodName:     roleRead,
	pb.CoordinatorService_ListRaftPeers_FullMethodName:      roleRead,
	pb.CoordinatorService_RemoveRaftPeer_FullMethodName:     roleAdmin,
	pb.CoordinatorService_TransferLeadership_FullMethodName: roleAdmin,
	// Servers ask each other before any bootstrap (Raft or ACL).
	pb.CoordinatorService_GetServerInfo_FullMethodName: rolePublic,
	// Refused by the FSM once done: at most once per cluster.
	pb.CoordinatorService_ACLBootstrap_FullMethodName:   rolePublic,
	pb.CoordinatorService_CreateACLToken_FullMethodName: roleAdmin,
	pb.CoordinatorService_ListACLTokens_FullMethodName:  roleAdmin,
	pb.CoordinatorService_RevokeACLToken_FullMethodName: roleAdmin,
	pb.CoordinatorService_Keyring_FullMethodName:        roleAdmin,
	pb.CoordinatorService_KeyringLocal_FullMethodName:   roleServer,
	pb.CoordinatorService_RecordRefusal_FullMethodName:  roleServer,
}

// roleFor is what method needs; known=false for a CoordinatorService
// method missing from methodRoles. Other services: gRPC health is public
// unless ProtectHealth; server reflection is public (it serves the
// published schema, so a generic client such as grpcurl reaches the
// method and gets that method's own refusal, naming the role it needs);
// anything else needs read.
func roleFor(method string, cfg ACLConfig) (need methodRole, known bool) {
	if r, ok := methodRoles[method]; ok {
		return r, true
	}
	if strings.HasPrefix(method, "/"+pb.CoordinatorService_ServiceDesc.ServiceName+"/") {
		return roleAdmin, false
	}
	if strings.HasPrefix(method, "/"+healthpb.Health_ServiceDesc.ServiceName+"/") && !cfg.ProtectHealth {
		return rolePublic, true
	}
	if strings.HasPrefix(method, "/"+reflectionv1.ServerReflection_ServiceDesc.ServiceName+"/") ||
		strings.HasPrefix(method, "/"+reflectionv1alpha.ServerReflection_ServiceDesc.ServiceName+"/") {
		return rolePublic, true
	}
	return roleRead, true
}
