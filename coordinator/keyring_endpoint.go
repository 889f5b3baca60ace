package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// KeyringFileName is a server's gossip keyring file in its data dir.
const KeyringFileName = "gossip.keyring"

// keyringCallTimeout bounds one node's answer to a keyring fan-out.
const keyringCallTimeout = 5 * time.Second

// ValidateKeyring checks a keyring request; every problem is named.
func ValidateKeyring(req *pb.KeyringRequest) error {
	var bad []string
	switch req.GetOp() {
	case pb.KeyringOp_KEYRING_OP_LIST:
		if req.GetKey() != "" {
			bad = append(bad, "list takes no key")
		}
	case pb.KeyringOp_KEYRING_OP_INSTALL, pb.KeyringOp_KEYRING_OP_USE, pb.KeyringOp_KEYRING_OP_REMOVE:
		if _, err := gossip.DecodeKey(req.GetKey()); err != nil {
			bad = append(bad, fmt.Sprintf("key: %v (make one with `stillpoint keygen`)", err))
		}
	default:
		bad = append(bad, fmt.Sprintf("op %v: want list, install, use or remove", req.GetOp()))
	}
	if err := validateNote(req.GetNote()); err != nil {
		bad = append(bad, err.Error())
	}
	return joinBad(bad)
}

// keyFingerprint names a key in logs and the audit log without revealing
// it.
func keyFingerprint(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:6])
}

// keyringTarget is one node a keyring change goes to.
type keyringTarget struct {
	name, role, addr string
	server           bool
}

// keyringTargets are the alive servers and agents in gossip.
func (s *Server) keyringTargets() []keyringTarget {
	var out []keyringTarget
	for _, m := range s.pool.Members() {
		if m.Status != gossip.StatusAlive || m.MetaErr != nil {
			continue
		}
		out = append(out, keyringTarget{name: m.Name, role: m.Meta.Role, addr: m.Meta.GRPCAddr, server: m.Meta.Role == RoleServer})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// fanOutKeyring sends op to every target in parallel and gathers the
// answers with the key counts.
func (s *Server) fanOutKeyring(ctx context.Context, op pb.KeyringOp, key string, targets []keyringTarget) *pb.KeyringResponse {
	results := make([]*pb.KeyringNodeResult, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.keyringOne(ctx, op, key, t)
			r.Node, r.Role = t.name, t.role
			results[i] = r
		}()
	}
	wg.Wait()
	resp := &pb.KeyringResponse{Nodes: results, KeyCounts: map[string]int32{}, PrimaryCounts: map[string]int32{}, TotalNodes: int32(len(targets))}
	for _, r := range results {
		if r.GetError() != "" {
			resp.FailedNodes++
		}
		for _, k := range r.GetKeys() {
			resp.KeyCounts[k]++
		}
		if r.GetPrimaryKey() != "" {
			resp.PrimaryCounts[r.GetPrimaryKey()]++
		}
	}
	return resp
}

func (s *Server) keyringOne(ctx context.Context, op pb.KeyringOp, key string, t keyringTarget) *pb.KeyringNodeResult {
	if t.name == s.cfg.NodeID {
		return s.pool.ApplyKeyring(op, key)
	}
	if t.addr == "" {
		return &pb.KeyringNodeResult{Error: fmt.Sprintf("%s publishes no gRPC address in gossip", t.name)}
	}
	cctx, cancel := context.WithTimeout(ctx, keyringCallTimeout)
	defer cancel()
	if t.server {
		cc, err := s.conns.get(t.addr)
		if err != nil {
			return &pb.KeyringNodeResult{Error: err.Error()}
		}
		md := append([]string{forwardedHeader, s.cfg.NodeID}, s.forwardHeaders(ctx)...)
		resp, err := pb.NewCoordinatorServiceClient(cc).KeyringLocal(metadata.AppendToOutgoingContext(cctx, md...), &pb.KeyringLocalRequest{Op: op, Key: key})
		if err != nil {
			return &pb.KeyringNodeResult{Error: fmt.Sprintf("server %s at %s: %s: %s", t.name, t.addr, status.Code(err), status.Convert(err).Message())}
		}
		return resp.GetResult()
	}
	cc, err := s.agentConns.get(t.addr)
	if err != nil {
		return &pb.KeyringNodeResult{Error: err.Error()}
	}
	resp, err := pb.NewAgentServiceClient(cc).Keyring(cctx, &pb.AgentServiceKeyringRequest{Op: op, Key: key})
	if err != nil {
		return &pb.KeyringNodeResult{Error: fmt.Sprintf("agent %s at %s: %s: %s", t.name, t.addr, status.Code(err), status.Convert(err).Message())}
	}
	return resp.GetResult()
}

// Keyring lists or changes the gossip keyring of every alive server and
// agent (the leader fans it out), reporting each node's answer. Use of a
// key some node lacks, and removal of a key some node uses as primary, are
// refused naming the nodes. Changes are audited (with the key's
// fingerprint, never the key).
func (s *Server) Keyring(ctx context.Context, req *pb.KeyringRequest) (*pb.KeyringResponse, error) {
	if err := ValidateKeyring(req); err != nil {
		return nil, err
	}
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.Keyring); done {
		return resp, err
	}
	op, key := req.GetOp(), req.GetKey()
	targets := s.keyringTargets()
	c := s.callerOf(ctx, req.GetNote())
	action := "keyring-" + strings.ToLower(strings.TrimPrefix(op.String(), "KEYRING_OP_"))
	refuse := func(nodes []string, msg string) error {
		s.auditKeyring(ctx, action, c, "refused: "+msg, codes.FailedPrecondition)
		return apiStatus(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_KEYRING, map[string]string{"nodes": strings.Join(nodes, ",")}, msg).Err()
	}
	if op == pb.KeyringOp_KEYRING_OP_USE || op == pb.KeyringOp_KEYRING_OP_REMOVE {
		before := s.fanOutKeyring(ctx, pb.KeyringOp_KEYRING_OP_LIST, "", targets)
		var lacking, primary, failed, failedNodes []string
		for _, r := range before.GetNodes() {
			switch {
			case r.GetError() != "":
				failed = append(failed, r.GetNode()+" ("+r.GetError()+")")
				failedNodes = append(failedNodes, r.GetNode())
			case op == pb.KeyringOp_KEYRING_OP_USE && !contains(r.GetKeys(), key):
				lacking = append(lacking, r.GetNode())
			case op == pb.KeyringOp_KEYRING_OP_REMOVE && r.GetPrimaryKey() == key:
				primary = append(primary, r.GetNode())
			}
		}
		switch {
		case len(failed) > 0:
			return nil, refuse(failedNodes, fmt.Sprintf("%s of key %s not attempted: %d of %d nodes did not list their keyring: %s",
				action, keyFingerprint(key), len(failed), len(targets), strings.Join(failed, "; ")))
		case len(lacking) > 0:
			return nil, refuse(lacking, fmt.Sprintf("key %s is not installed on %d of %d nodes: %s; run `stillpoint keyring install` first",
				keyFingerprint(key), len(lacking), len(targets), strings.Join(lacking, ", ")))
		case len(primary) > 0:
			return nil, refuse(primary, fmt.Sprintf("key %s is the primary key on %s; `stillpoint keyring use` another key first",
				keyFingerprint(key), strings.Join(primary, ", ")))
		}
	}
	resp := s.fanOutKeyring(ctx, op, key, targets)
	if op != pb.KeyringOp_KEYRING_OP_LIST {
		detail := fmt.Sprintf("key %s: %d of %d nodes applied", keyFingerprint(key), resp.GetTotalNodes()-resp.GetFailedNodes(), resp.GetTotalNodes())
		var failed []string
		for _, r := range resp.GetNodes() {
			if r.GetError() != "" {
				failed = append(failed, r.GetNode()+": "+r.GetError())
			}
		}
		if len(failed) > 0 {
			detail += "; failed: " + strings.Join(failed, "; ")
		}
		s.auditKeyring(ctx, action, c, detail, codes.OK)
		s.log.Warn("gossip keyring changed", zap.String("op", action), zap.String("key", keyFingerprint(key)),
			zap.Int32("nodes", resp.GetTotalNodes()), zap.Int32("failed", resp.GetFailedNodes()), zap.String("actor", c.GetActor()))
	}
	return resp, nil
}

func (s *Server) auditKeyring(ctx context.Context, action string, c *pb.Caller, detail string, code codes.Code) {
	rec := &pb.AuditRecord{Action: action, Actor: c.GetActor(), Caller: c, Detail: detail, At: s.Stamp(), Method: pb.CoordinatorService_Keyring_FullMethodName}
	if code != codes.OK {
		rec.RefusedCode = code.String()
	}
	actx, cancel := commitContext(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	if _, err := s.Apply(actx, &pb.AppendAuditCommand{Record: rec}); err != nil {
		s.log.Warn("keyring change not audited", zap.String("op", action), zap.Error(err))
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// KeyringLocal changes this server's own keyring (server to server).
func (s *Server) KeyringLocal(_ context.Context, req *pb.KeyringLocalRequest) (*pb.KeyringLocalResponse, error) {
	res := s.pool.ApplyKeyring(req.GetOp(), req.GetKey())
	res.Role = RoleServer
	return &pb.KeyringLocalResponse{Result: res}, nil
}
