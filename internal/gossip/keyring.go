package gossip

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Keyring errors.
var (
	// ErrNoEncryption: the pool runs without gossip encryption, so it has
	// no keyring to change.
	ErrNoEncryption = errors.New("gossip encryption is off (no encryption key, no keyring file)")
	// ErrBadKey: a key that is not base64 of 16, 24 or 32 bytes.
	ErrBadKey = errors.New("bad gossip key")
	// ErrPrimaryKey: the primary key cannot be removed.
	ErrPrimaryKey = errors.New("the primary gossip key cannot be removed; `keyring use` another key first")
	// ErrKeyNotInstalled: use of a key the node does not have.
	ErrKeyNotInstalled = errors.New("gossip key not installed")
)

// DecodeKey parses a base64 gossip key of 16, 24 or 32 bytes.
func DecodeKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not valid base64: %v", ErrBadKey, err)
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("%w: %d bytes, want 16, 24 or 32", ErrBadKey, len(k))
}

func encodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// loadKeyring builds the pool's keyring: from the keyring file when it
// exists (it wins over SecretKey, as Consul's does), else from SecretKey
// (and then writes the file). nil: no encryption.
func loadKeyring(cfg Config, log *zap.Logger) (*memberlist.Keyring, error) {
	if cfg.KeyringFile != "" {
		b, err := os.ReadFile(cfg.KeyringFile)
		switch {
		case err == nil:
			var keys []string
			if err := json.Unmarshal(b, &keys); err != nil {
				return nil, fmt.Errorf("keyring file %s: %w", cfg.KeyringFile, err)
			}
			if len(keys) == 0 {
				return nil, fmt.Errorf("keyring file %s holds no key", cfg.KeyringFile)
			}
			var raw [][]byte
			for i, s := range keys {
				k, err := DecodeKey(s)
				if err != nil {
					return nil, fmt.Errorf("keyring file %s, key %d: %w", cfg.KeyringFile, i, err)
				}
				raw = append(raw, k)
			}
			if len(cfg.SecretKey) > 0 && encodeKey(cfg.SecretKey) != keys[0] {
				log.Warn("gossip encryption key in the config ignored: the keyring file is in force", zap.String("keyring_file", cfg.KeyringFile))
			}
			return memberlist.NewKeyring(raw[1:], raw[0])
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("keyring file: %w", err)
		}
	}
	if len(cfg.SecretKey) == 0 {
		return nil, nil
	}
	kr, err := memberlist.NewKeyring(nil, cfg.SecretKey)
	if err != nil {
		return nil, err
	}
	if cfg.KeyringFile != "" {
		if err := saveKeyring(cfg.KeyringFile, kr); err != nil {
			return nil, err
		}
	}
	return kr, nil
}

// saveKeyring writes the keys, primary first, atomically (mode 0600).
func saveKeyring(path string, kr *memberlist.Keyring) error {
	keys := []string{encodeKey(kr.GetPrimaryKey())}
	for _, k := range kr.GetKeys() {
		if s := encodeKey(k); s != keys[0] {
			keys = append(keys, s)
		}
	}
	b, _ := json.Marshal(keys)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("keyring file %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("keyring file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("keyring file %s: %w", path, err)
	}
	return nil
}

// Keys lists the installed keys (base64), primary first.
func (p *Pool) Keys() (keys []string, primary string, err error) {
	if p.keyring == nil {
		return nil, "", fmt.Errorf("gossip %s: %w", p.name, ErrNoEncryption)
	}
	primary = encodeKey(p.keyring.GetPrimaryKey())
	keys = []string{primary}
	for _, k := range p.keyring.GetKeys() {
		if s := encodeKey(k); s != primary {
			keys = append(keys, s)
		}
	}
	return keys, primary, nil
}

// ApplyKeyring lists or changes the keyring (install, use, remove) and
// persists it to the keyring file, without a restart. The answer carries
// the keys after the operation, and the error (if any) as text.
func (p *Pool) ApplyKeyring(op pb.KeyringOp, key string) *pb.KeyringNodeResult {
	res := &pb.KeyringNodeResult{Node: p.name}
	if err := p.applyKeyring(op, key); err != nil {
		res.Error = err.Error()
	}
	res.Keys, res.PrimaryKey, _ = p.Keys()
	return res
}

func (p *Pool) applyKeyring(op pb.KeyringOp, key string) error {
	p.keyMu.Lock()
	defer p.keyMu.Unlock()
	if p.keyring == nil {
		return fmt.Errorf("gossip %s: %w", p.name, ErrNoEncryption)
	}
	if op == pb.KeyringOp_KEYRING_OP_LIST {
		return nil
	}
	k, err := DecodeKey(key)
	if err != nil {
		return err
	}
	switch op {
	case pb.KeyringOp_KEYRING_OP_INSTALL:
		err = p.keyring.AddKey(k)
	case pb.KeyringOp_KEYRING_OP_USE:
		installed := false
		for _, have := range p.keyring.GetKeys() {
			installed = installed || encodeKey(have) == key
		}
		if !installed {
			return fmt.Errorf("gossip %s: %w: install it first", p.name, ErrKeyNotInstalled)
		}
		err = p.keyring.UseKey(k)
	case pb.KeyringOp_KEYRING_OP_REMOVE:
		if encodeKey(p.keyring.GetPrimaryKey()) == key {
			return fmt.Errorf("gossip %s: %w", p.name, ErrPrimaryKey)
		}
		err = p.keyring.RemoveKey(k)
	default:
		return fmt.Errorf("gossip %s: keyring operation %v unknown", p.name, op)
	}
	if err != nil {
		return fmt.Errorf("gossip %s: %s: %w", p.name, op, err)
	}
	if p.keyringFile != "" {
		if err := saveKeyring(p.keyringFile, p.keyring); err != nil {
			return fmt.Errorf("gossip %s: applied in memory but not persisted: %w", p.name, err)
		}
	}
	p.log.Info("gossip keyring changed", zap.Stringer("op", op))
	return nil
}
