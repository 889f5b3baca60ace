package main

import (
	"context"

	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// devPlanName is the backup plan `stillpoint dev` stores, so that
// `stillpoint backup run --plan dev` works at once.
const devPlanName = "dev"

// devPlan is the guide's order over the dev cluster's harmless snapshot
// hooks: the Ledger group (ledger-1, ledger-2), then the Auditor group
// (auditor-1) while the Ledger cluster is held, then an after hook on
// ledger-3 that gets the restore point.
func devPlan() *pb.BackupPlan {
	snap := func(agent string) *pb.HookRef { return &pb.HookRef{Agent: agent, Hook: devcluster.HookSnapshot} }
	return &pb.BackupPlan{
		Name: devPlanName,
		Groups: []*pb.HookGroup{
			{Name: "ledger-databases", Hooks: []*pb.HookRef{snap("ledger-1"), snap("ledger-2")}},
			{Name: "auditor-databases", Hooks: []*pb.HookRef{snap("auditor-1")}},
		},
		After: []*pb.HookRef{snap("ledger-3")},
	}
}

// storeDevPlan stores devPlan through the API (validated like any plan).
func storeDevPlan(ctx context.Context, c *devcluster.Cluster) error {
	cl, err := c.Client(c.Leader())
	if err != nil {
		return err
	}
	_, err = cl.SetBackupPlan(ctx, &pb.SetBackupPlanRequest{Plan: devPlan(), RequestedBy: "stillpoint dev"})
	return err
}
