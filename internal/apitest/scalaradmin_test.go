package apitest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wireRules is the buf.yaml for comparing rpc.Admin with scalar-admin: the
// PACKAGE rules (names and numbers of the package, service, methods,
// messages and fields: everything a gRPC peer sees) without the per-language
// file options, which never reach the wire (upstream sets java_*, we set
// go_package). WIRE alone would not do: it does not see a deleted RPC.
const wireRules = `version: v2
breaking:
  use: [PACKAGE]
  except:
    - FILE_SAME_GO_PACKAGE
    - FILE_SAME_JAVA_MULTIPLE_FILES
    - FILE_SAME_JAVA_OUTER_CLASSNAME
    - FILE_SAME_JAVA_PACKAGE
`

// TestAdminWireMatchesScalarAdmin: proto/rpc/admin.proto and scalar-admin's
// admin.proto (testdata/scalar-admin, see its README.md) break neither the
// other, in both directions: the one with Stats (v1 servers) and CheckPaused
// (v2) matches ours exactly; today's upstream (Stats removed) is a subset.
// Two controls show the check can fail: today's upstream against ours misses
// Stats, and ours with a renumbered field breaks.
func TestAdminWireMatchesScalarAdmin(t *testing.T) {
	root := repoRoot(t)
	buf := bufBin(t, root)
	tmp := t.TempDir()
	tree := func(name, src string) {
		t.Helper()
		if err := copyFile(src, filepath.Join(tmp, name, "admin.proto")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, name, "buf.yaml"), []byte(wireRules), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ours := filepath.Join(root, "proto", "rpc", "admin.proto")
	tree("ours", ours)
	tree("full", filepath.Join("testdata", "scalar-admin", "full", "admin.proto"))
	tree("latest", filepath.Join("testdata", "scalar-admin", "latest", "admin.proto"))
	tree("renumbered", ours)
	p := filepath.Join(tmp, "renumbered", "admin.proto")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	const decl = "optional int64 max_pause_wait_time = 2;"
	if !strings.Contains(string(b), decl) {
		t.Fatalf("%s has no %q", ours, decl)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), decl, "optional int64 max_pause_wait_time = 3;", 1)), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		input, against string
		breaks         []string // nil: must pass; else must fail naming each
	}{
		{"ours", "full", nil},
		{"full", "ours", nil},
		{"ours", "latest", nil},
		{"latest", "ours", []string{`"Stats"`}},
		{"renumbered", "full", []string{`"max_pause_wait_time"`}},
	} {
		t.Run(tc.input+" against "+tc.against, func(t *testing.T) {
			out, code := runBuf(t, buf, tmp, "breaking", tc.input, "--against", tc.against)
			if tc.breaks == nil {
				if code != 0 {
					t.Fatalf("rpc.Admin drifted from scalar-admin's wire (exit %d):\n%s", code, out)
				}
				return
			}
			if code == 0 {
				t.Fatalf("buf breaking passed; want a failure naming %v", tc.breaks)
			}
			for _, want := range tc.breaks {
				if !strings.Contains(out, want) {
					t.Errorf("buf breaking output does not name %s:\n%s", want, out)
				}
			}
		})
	}
}
