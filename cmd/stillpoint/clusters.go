package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// errNoAgents: no agent joined the cluster asked for, or none at all.
var errNoAgents = errors.New("no agents")

// unknownClusterError says that no agent ever joined cluster and names the
// clusters that exist, from the members list (roster members included).
func unknownClusterError(ctx context.Context, c *coordinatorClient, cluster string, stale bool) error {
	resp, err := c.ListMembers(ctx, &pb.ListMembersRequest{Stale: stale})
	if err != nil {
		return fmt.Errorf("cluster %q is unknown: %w ever joined it (listing the known clusters failed: %w)", cluster, errNoAgents, c.rpcError("list members", err))
	}
	known := map[string]bool{}
	for _, m := range resp.GetMembers() {
		if m.GetCluster() != "" {
			known[m.GetCluster()] = true
		}
	}
	if len(known) == 0 {
		return fmt.Errorf("cluster %q is unknown: %w in the gossip pool of %s (start agents, then try again)", cluster, errNoAgents, c.cf.addr)
	}
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	sort.Strings(names)
	return fmt.Errorf("cluster %q is unknown: %w ever joined it; known clusters: %s", cluster, errNoAgents, strings.Join(names, ", "))
}
