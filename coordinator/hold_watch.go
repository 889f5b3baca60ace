package coordinator

import (
	"fmt"
	"sort"
	"strings"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// holdProblems is the membership watch of SPEC step 4: a target that
// restarted, died or left, or a new node of the cluster, invalidates the
// window.
func (s *Server) holdProblems(op *pb.Operation, incarnations map[string]uint64) string {
	targets := map[string]bool{}
	var why []string
	for _, t := range op.GetTargets() {
		targets[t.GetNode()] = true
		m, ok := s.pool.Member(t.GetNode())
		switch {
		case !ok:
			why = append(why, fmt.Sprintf("%s: left the gossip pool during the hold", t.GetNode()))
		case m.Status != gossip.StatusAlive:
			why = append(why, fmt.Sprintf("%s: agent is %s during the hold", t.GetNode(), enumname.Of(memberStatus(m.Status))))
		case m.Meta.InterruptedOpID == op.GetOpId():
			why = append(why, fmt.Sprintf("%s: node came back unpaused during the hold (it restarted)", t.GetNode()))
		case incarnations[t.GetNode()] != 0 && m.Meta.Incarnation != 0 && m.Meta.Incarnation != incarnations[t.GetNode()]:
			why = append(why, fmt.Sprintf("%s: agent restarted during the hold", t.GetNode()))
		}
	}
	for _, m := range s.pool.Members() {
		if m.Status == gossip.StatusAlive && fsm.PausesCluster(op, m.Meta.Cluster) && m.Meta.Role != RoleServer && !targets[m.Name] {
			why = append(why, fmt.Sprintf("%s: a new node of cluster %s joined during the hold (it runs unpaused)", m.Name, m.Meta.Cluster))
		}
	}
	sort.Strings(why)
	return strings.Join(why, "; ")
}
