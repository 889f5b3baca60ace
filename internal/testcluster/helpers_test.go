package testcluster

import "github.com/stillpoint-dev/stillpoint/internal/gossip"

func ledgerOnly() gossip.Meta { return gossip.Meta{Role: "ledger", Cluster: "ledger"} }
