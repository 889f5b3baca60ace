package fsm

import (
	"fmt"
	"slices"
	"strings"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Clusters is every cluster op pauses: its clusters, or its one cluster.
func Clusters(op *pb.Operation) []string {
	if cs := op.GetClusters(); len(cs) > 0 {
		return cs
	}
	if op.GetCluster() == "" {
		return nil
	}
	return []string{op.GetCluster()}
}

// ClusterNames is op's clusters for a person: "ledger", "ledger, auditor".
func ClusterNames(op *pb.Operation) string { return strings.Join(Clusters(op), ", ") }

// PausesCluster reports whether op pauses cluster.
func PausesCluster(op *pb.Operation, cluster string) bool {
	return slices.Contains(Clusters(op), cluster)
}

// checkClusters validates op's cluster fields: cluster set, and clusters,
// when set, starting with it, each named once.
func checkClusters(op *pb.Operation) error {
	if op.GetCluster() == "" {
		return fmt.Errorf("%w: operation %s without cluster", ErrInvalidCommand, op.GetOpId())
	}
	cs := op.GetClusters()
	if len(cs) == 0 {
		return nil
	}
	if cs[0] != op.GetCluster() {
		return fmt.Errorf("%w: operation %s: clusters %v must start with its cluster %q", ErrInvalidCommand, op.GetOpId(), cs, op.GetCluster())
	}
	seen := map[string]bool{}
	for _, c := range cs {
		if c == "" {
			return fmt.Errorf("%w: operation %s names an empty cluster", ErrInvalidCommand, op.GetOpId())
		}
		if seen[c] {
			return fmt.Errorf("%w: operation %s names cluster %q twice", ErrInvalidCommand, op.GetOpId(), c)
		}
		seen[c] = true
	}
	return nil
}
