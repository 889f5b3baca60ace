package gossip

import (
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// TestKeyringRotation: three encrypted pools rotate their key at run time
// (install new, use new, remove old) and stay joined; each keyring file
// holds the new key alone, so a restarted node comes back with it; a node
// holding only the old key can no longer join; the primary key cannot be
// removed and a key not installed cannot be used.
func TestKeyringRotation(t *testing.T) {
	oldKey := []byte("0123456789abcdef0123456789abcdef")
	newKey := []byte("abcdefghijklmnopqrstuvwxyz012345")
	oldB64, newB64 := base64.StdEncoding.EncodeToString(oldKey), base64.StdEncoding.EncodeToString(newKey)
	dir := t.TempDir()
	files := map[string]string{}
	nodes := startCluster(t, 3, func(c *Config) {
		c.SecretKey = oldKey
		c.KeyringFile = filepath.Join(dir, c.Name+".keyring")
		files[c.Name] = c.KeyringFile
	})

	step := func(op pb.KeyringOp, key string) {
		t.Helper()
		for _, nd := range nodes {
			if r := nd.pool.ApplyKeyring(op, key); r.GetError() != "" {
				t.Fatalf("%s %s on %s: %s", op, key, nd.pool.LocalName(), r.GetError())
			}
		}
	}
	if r := nodes[0].pool.ApplyKeyring(pb.KeyringOp_KEYRING_OP_USE, newB64); !strings.Contains(r.GetError(), "not installed") {
		t.Fatalf("use of a key not installed: %q", r.GetError())
	}
	step(pb.KeyringOp_KEYRING_OP_INSTALL, newB64)
	step(pb.KeyringOp_KEYRING_OP_USE, newB64)
	if r := nodes[0].pool.ApplyKeyring(pb.KeyringOp_KEYRING_OP_REMOVE, newB64); !strings.Contains(r.GetError(), "primary") {
		t.Fatalf("removing the primary key: %q", r.GetError())
	}
	step(pb.KeyringOp_KEYRING_OP_REMOVE, oldB64)
	for _, nd := range nodes {
		keys, primary, err := nd.pool.Keys()
		if err != nil || primary != newB64 || len(keys) != 1 {
			t.Fatalf("%s keyring after rotation = %v primary %s, %v", nd.pool.LocalName(), keys, primary, err)
		}
	}
	// Still one pool: metadata changed after the rotation reaches everyone.
	nodes[2].meta.set(func(m *Meta) { m.Cluster = "rotated" })
	if err := nodes[2].pool.UpdateMeta(); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, nodes)

	stale := startNode(t, "stale", func(c *Config) { c.SecretKey = oldKey })
	if n, err := stale.pool.Join([]string{nodes[0].pool.AdvertiseAddr()}); err == nil || n != 0 {
		t.Fatalf("node with only the removed key joined: contacted %d, err %v", n, err)
	}
	if _, ok := nodes[0].pool.Member("stale"); ok {
		t.Fatal("n0 knows the node with the removed key")
	}

	// A restart reads the keyring file (the config's old key is ignored).
	_ = nodes[1].pool.Shutdown()
	re := startNode(t, "n1-restarted", func(c *Config) {
		c.SecretKey = oldKey
		c.KeyringFile = files["n1"]
	})
	if _, primary, _ := re.pool.Keys(); primary != newB64 {
		t.Fatalf("restarted node's primary = %s, want the rotated key", primary)
	}
	if _, err := re.pool.Join([]string{nodes[0].pool.AdvertiseAddr()}); err != nil {
		t.Fatalf("restarted node with the persisted keyring: %v", err)
	}
	waitConverged(t, []*testNode{nodes[0], nodes[2], re})
}

func TestKeyringErrors(t *testing.T) {
	plain := startNode(t, "plain", nil)
	if r := plain.pool.ApplyKeyring(pb.KeyringOp_KEYRING_OP_LIST, ""); !strings.Contains(r.GetError(), "encryption is off") {
		t.Fatalf("keyring of a plaintext pool: %q", r.GetError())
	}
	for _, bad := range []string{"", "!!", base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, err := DecodeKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("DecodeKey(%q) = %v", bad, err)
		}
	}
}
