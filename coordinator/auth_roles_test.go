package coordinator

import (
	"testing"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// TestEveryMethodHasARole walks every CoordinatorService method: one
// without a role in methodRoles fails here (and is refused at run time),
// so a new RPC cannot be left open. The table names no method that does
// not exist.
func TestEveryMethodHasARole(t *testing.T) {
	desc := pb.CoordinatorService_ServiceDesc
	seen := map[string]bool{}
	var names []string
	for _, m := range desc.Methods {
		names = append(names, m.MethodName)
	}
	for _, st := range desc.Streams {
		names = append(names, st.StreamName)
	}
	for _, n := range names {
		full := "/" + desc.ServiceName + "/" + n
		seen[full] = true
		if _, ok := methodRoles[full]; !ok {
			t.Errorf("%s has no role in methodRoles: add it (read, operate, admin, public or server)", full)
		}
		if need, known := roleFor(full, ACLConfig{}); !known || need != methodRoles[full] {
			t.Errorf("roleFor(%s) = %v, %v", full, need, known)
		}
	}
	for m := range methodRoles {
		if !seen[m] {
			t.Errorf("methodRoles names %s, which CoordinatorService does not have", m)
		}
	}
	if need, known := roleFor("/"+desc.ServiceName+"/NotYetWritten", ACLConfig{}); known || need != roleAdmin {
		t.Errorf("an unknown method is %v known=%v, want refused", need, known)
	}
	if need, _ := roleFor("/grpc.health.v1.Health/Check", ACLConfig{}); need != rolePublic {
		t.Errorf("health is %v by default, want public", need)
	}
	if need, _ := roleFor("/grpc.health.v1.Health/Check", ACLConfig{ProtectHealth: true}); need != roleRead {
		t.Errorf("protected health is %v, want read", need)
	}
	// Reflection serves the published schema: a generic client (grpcurl)
	// must reach a method to be told which role that method needs.
	for _, m := range []string{
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
	} {
		if need, known := roleFor(m, ACLConfig{ProtectHealth: true}); !known || need != rolePublic {
			t.Errorf("%s is %v known=%v, want public", m, need, known)
		}
	}
	if need, _ := roleFor("/some.other.Service/Call", ACLConfig{}); need != roleRead {
		t.Errorf("a service of no table is %v, want read", need)
	}
	// The role split, spot-checked.
	for m, want := range map[string]methodRole{
		pb.CoordinatorService_StartPause_FullMethodName:     roleOperate,
		pb.CoordinatorService_ForceUnpause_FullMethodName:   roleOperate,
		pb.CoordinatorService_StartBackup_FullMethodName:    roleOperate,
		pb.CoordinatorService_UpdateConfig_FullMethodName:   roleAdmin,
		pb.CoordinatorService_RemoveRaftPeer_FullMethodName: roleAdmin,
		pb.CoordinatorService_Keyring_FullMethodName:        roleAdmin,
		pb.CoordinatorService_ListMembers_FullMethodName:    roleRead,
	} {
		if methodRoles[m] != want {
			t.Errorf("%s needs %v, want %v", m, methodRoles[m], want)
		}
	}
}
