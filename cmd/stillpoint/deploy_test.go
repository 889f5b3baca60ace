package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/stillpoint-dev/stillpoint/internal/config"
)

// The shipped deployment files (deploy/systemd, deploy/kubernetes) go
// through the binary's own config loaders here, with the flags and
// environment they pass, so an unknown key, a flag the binary lacks or a
// value it refuses fails the build instead of a deployment.

// resolveSub parses args on a fresh `server` or `agent` command and
// resolves and validates its configuration, without starting anything.
func resolveSub(t *testing.T, sub string, args []string) error {
	t.Helper()
	var cmd *cobra.Command
	var rerr error
	switch sub {
	case "server":
		cmd = newServerCmd()
		cmd.RunE = func(cmd *cobra.Command, _ []string) error {
			_, _, rerr = resolveServerConfig(cmd)
			return nil
		}
	case "agent":
		cmd = newAgentCmd()
		cmd.RunE = func(cmd *cobra.Command, _ []string) error {
			_, rerr = resolveAgentConfig(cmd)
			return nil
		}
	default:
		t.Fatalf("unknown subcommand %q", sub)
	}
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.Execute(); err != nil {
		return err // a flag the command does not accept, or a bad value
	}
	return rerr
}

// writeTLS writes a CA and one leaf certificate signed by it:
// caFile, certFile and keyFile in PEM.
func writeTLS(t *testing.T, caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "stillpoint"},
		DNSNames: []string{"stillpoint-server", "stillpoint-agent"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caTmpl, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for path, block := range map[string]*pem.Block{
		caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: leafDER},
		keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func gossipKey(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}

// TestSystemdExampleConfigs: deploy/systemd/server.yaml and agent.yaml, as
// the units run them (`stillpoint server|agent --config FILE`, the gossip
// key from the EnvironmentFile), resolve and validate; the TLS files they
// name are created (in a temp dir standing for /etc/stillpoint/tls). A key
// the loader does not know fails them.
func TestSystemdExampleConfigs(t *testing.T) {
	for _, sub := range []string{"server", "agent"} {
		t.Run(sub, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "systemd", sub+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			tlsDir := filepath.Join(dir, "tls")
			text := strings.ReplaceAll(string(b), "/etc/stillpoint/tls/", tlsDir+"/")
			for _, name := range []string{"server", "agent"} {
				writeTLS(t, filepath.Join(tlsDir, "ca.pem"), filepath.Join(tlsDir, name+".pem"), filepath.Join(tlsDir, name+"-key.pem"))
			}
			t.Setenv("STILLPOINT_GOSSIP_ENCRYPTION_KEY", gossipKey(t))
			path := filepath.Join(dir, sub+".yaml")
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := resolveSub(t, sub, []string{"--config", path}); err != nil {
				t.Fatalf("deploy/systemd/%s.yaml: %v", sub, err)
			}
			if err := os.WriteFile(path, []byte(text+"\nbogus_key: 1\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := resolveSub(t, sub, []string{"--config", path}); err == nil || !strings.Contains(err.Error(), `unknown key "bogus_key"`) {
				t.Fatalf("deploy/systemd/%s.yaml with an unknown key: err %v, want it named", sub, err)
			}
		})
	}
}

// Just enough of the Kubernetes types to run a container's command line;
// deploy/kubernetes decodes the manifests strictly into k8s.io/api.
type k8sDoc struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Template struct {
			Spec k8sPod `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sPod struct {
	Containers []k8sContainer `yaml:"containers"`
	Volumes    []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

type k8sContainer struct {
	Name string   `yaml:"name"`
	Args []string `yaml:"args"`
	Env  []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
}

func loadK8s(t *testing.T) []k8sDoc {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "deploy", "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("deploy/kubernetes: %v %v", files, err)
	}
	var docs []k8sDoc
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(fh)
		for {
			var d k8sDoc
			err := dec.Decode(&d)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			docs = append(docs, d)
		}
		fh.Close()
	}
	return docs
}

var k8sVarRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// TestKubernetesContainersResolve: every stillpoint container in
// deploy/kubernetes, run as Kubernetes would run it (its ConfigMaps and
// Secrets mounted, downward-API env, $(VAR) expanded in args), resolves
// and validates with the binary's loaders.
func TestKubernetesContainersResolve(t *testing.T) {
	docs := loadK8s(t)
	configMaps := map[string]map[string]string{}
	for _, d := range docs {
		if d.Kind == "ConfigMap" {
			configMaps[d.Metadata.Namespace+"/"+d.Metadata.Name] = d.Data
		}
	}
	ran := map[string]int{}
	for _, d := range docs {
		if d.Kind != "StatefulSet" && d.Kind != "Deployment" {
			continue
		}
		pod := d.Spec.Template.Spec
		for _, c := range pod.Containers {
			if len(c.Args) == 0 || (c.Args[0] != "server" && c.Args[0] != "agent") {
				continue
			}
			name := d.Metadata.Namespace + "/" + d.Metadata.Name + "/" + c.Name
			t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
				runK8sContainer(t, configMaps, d, pod, c)
			})
			ran[c.Args[0]]++
		}
	}
	if ran["server"] != 1 || ran["agent"] != 2 {
		t.Errorf("ran %v; want 1 server and 2 agent containers (Ledger, Auditor)", ran)
	}
}

func runK8sContainer(t *testing.T, configMaps map[string]map[string]string, d k8sDoc, pod k8sPod, c k8sContainer) {
	root := t.TempDir()
	ns := d.Metadata.Namespace
	// Each mount becomes a temp path; the paths in args and configs are
	// rewritten to it (longest mount path first).
	rewrite := map[string]string{}
	type pending struct{ path, data string }
	var files []pending
	for i, m := range c.VolumeMounts {
		local := filepath.Join(root, "mount", string(rune('a'+i)))
		rewrite[m.MountPath] = local
		for _, v := range pod.Volumes {
			if v.Name != m.Name {
				continue
			}
			switch {
			case v.ConfigMap != nil:
				data, ok := configMaps[ns+"/"+v.ConfigMap.Name]
				if !ok {
					t.Fatalf("ConfigMap %s/%s not found", ns, v.ConfigMap.Name)
				}
				if m.SubPath != "" {
					files = append(files, pending{local, data[m.SubPath]})
					continue
				}
				for k, val := range data {
					files = append(files, pending{filepath.Join(local, k), val})
				}
			case v.Secret != nil:
				// A TLS secret as cert-manager or the README writes it.
				writeTLS(t, filepath.Join(local, "ca.crt"), filepath.Join(local, "tls.crt"), filepath.Join(local, "tls.key"))
			default:
				if err := os.MkdirAll(local, 0o700); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	mounts := make([]string, 0, len(rewrite))
	for m := range rewrite {
		mounts = append(mounts, m)
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	var pairs []string
	for _, m := range mounts {
		pairs = append(pairs, m, rewrite[m])
	}
	local := strings.NewReplacer(pairs...).Replace // one pass: temp paths are not rewritten again
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.path, []byte(local(f.data)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		val := e.Value
		if vf := e.ValueFrom; vf != nil {
			switch {
			case vf.FieldRef != nil && vf.FieldRef.FieldPath == "metadata.name":
				val = d.Metadata.Name + "-0"
			case vf.FieldRef != nil && vf.FieldRef.FieldPath == "status.podIP":
				val = "10.244.1.7"
			case vf.SecretKeyRef != nil:
				val = gossipKey(t)
			default:
				t.Fatalf("env %s: a valueFrom this test does not know", e.Name)
			}
		}
		env[e.Name] = val
		if strings.HasPrefix(e.Name, config.EnvPrefix+"_") {
			t.Setenv(e.Name, val)
		}
	}
	var args []string
	for _, a := range c.Args[1:] {
		a = k8sVarRef.ReplaceAllStringFunc(a, func(ref string) string {
			if v, ok := env[ref[2:len(ref)-1]]; ok {
				return v
			}
			return ref
		})
		args = append(args, local(a))
	}
	if err := resolveSub(t, c.Args[0], args); err != nil {
		t.Fatalf("stillpoint %s %s: %v", c.Args[0], strings.Join(args, " "), err)
	}
}
