package tlsx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrExists is returned when a file would be overwritten without force.
var ErrExists = errors.New("file exists")

// WriteKeyPair writes kp as certFile (0644) and keyFile (0600). Without
// force it refuses, naming the file, when either exists. Each file is
// written to a temporary name and renamed, so a process watching the files
// never reads half a key.
func WriteKeyPair(kp *KeyPair, certFile, keyFile string, force bool) error {
	if !force {
		for _, f := range []string{certFile, keyFile} {
			if _, err := os.Stat(f); err == nil {
				return fmt.Errorf("%w: %s (pass --force to overwrite)", ErrExists, f)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	if err := writeAtomic(keyFile, kp.KeyPEM, 0o600); err != nil {
		return err
	}
	return writeAtomic(certFile, kp.CertPEM, 0o644)
}

func writeAtomic(name string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }()
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// LoadKeyPairFiles reads and parses a certificate and key from files.
func LoadKeyPairFiles(certFile, keyFile string) (*KeyPair, error) {
	c, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	k, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	kp, err := ParseKeyPair(c, k)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", certFile, keyFile, err)
	}
	return kp, nil
}
