package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/stillpoint-dev/stillpoint/internal/version"
)

// runMain runs the command line as main does and returns the exit status,
// stdout and stderr.
func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// walk calls f on every command a user can reach, the generated help and
// completion commands included, hidden ones left out.
func walk(c *cobra.Command, f func(*cobra.Command)) {
	if c.Hidden {
		return
	}
	f(c)
	for _, sub := range c.Commands() {
		walk(sub, f)
	}
}

// fullTree is the root command with cobra's generated commands added, as
// Execute adds them.
func fullTree() *cobra.Command {
	root := newRootCmd()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	return root
}

// placeholderText is what a draft leaves in help text.
var placeholderText = regexp.MustCompile(`(?i)\b(TODO|FIXME|TBD|XXX|lorem ipsum|placeholder)\b|<[a-z ]+ here>`)

// flagPlaceholder is a value name in a flag's help line ("ID",
// "NODE=DURATION"); pflag takes the first `quoted` word of the usage as
// one, so a backquoted phrase breaks the line.
var flagPlaceholder = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:=/-]*$`)

// Every command's --help is complete: walked over the whole tree (not a
// list kept by hand), so a command added later is checked too.
func TestEveryCommandHelp(t *testing.T) {
	n := 0
	walk(fullTree(), func(c *cobra.Command) {
		n++
		path := c.CommandPath()
		t.Run(path, func(t *testing.T) {
			if c.Short == "" || len(c.Short) > 80 || strings.HasSuffix(c.Short, ".") {
				t.Errorf("Short %q: want one line under 80 characters, no final period", c.Short)
			}
			teaches := strings.Contains(c.Example, path) || (c.Example == "" && strings.Contains(c.Long, path))
			if !teaches {
				t.Errorf("neither an Example nor (without one) the Long text shows %q in use:\nLong: %s\nExample: %s", path, c.Long, c.Example)
			}
			for _, text := range []string{c.Short, c.Long, c.Example, c.Use} {
				if m := placeholderText.FindString(text); m != "" {
					t.Errorf("placeholder %q in help text: %s", m, text)
				}
			}
			check := func(f *pflag.Flag) {
				if f.Hidden {
					return
				}
				if strings.TrimSpace(f.Usage) == "" {
					t.Errorf("flag --%s has no description", f.Name)
				}
				if name, _ := pflag.UnquoteUsage(f); name != "" && !flagPlaceholder.MatchString(name) {
					t.Errorf("flag --%s renders the value placeholder %q (a backquoted phrase in its usage)", f.Name, name)
				}
			}
			if c.Flags().Lookup("addr") != nil && c.Flags().Lookup("output") == nil {
				t.Errorf("talks to the coordinator (--addr) but has no -o/--output")
			}
			c.LocalFlags().VisitAll(check)
			c.InheritedFlags().VisitAll(check)

			args := append(strings.Fields(path)[1:], "--help")
			code, out, errOut := runMain(t, args...)
			if code != 0 || errOut != "" {
				t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
			}
			if !strings.Contains(out, "Usage:") || !strings.Contains(out, path) {
				t.Errorf("%v does not render usage:\n%s", args, out)
			}
		})
	})
	if n < 25 {
		t.Fatalf("walked %d commands; the tree walk is broken", n)
	}
}

// An unknown subcommand, at any level, is a usage error (exit 2) that
// names it and suggests the near ones; so is a wrong flag or argument.
func TestUnknownCommandsAndBadUsageExit2(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"ops", "lsit"}, []string{`unknown command "lsit" for "stillpoint ops"`, "Did you mean this?", "list", "Run 'stillpoint ops --help'"}},
		{[]string{"restore-points", "shwo", "x"}, []string{`unknown command "shwo" for "stillpoint restore-points"`, "show"}},
		{[]string{"operator", "raft", "nosuch"}, []string{`unknown command "nosuch" for "stillpoint operator raft"`, "list-peers, remove-peer, transfer-leader"}},
		{[]string{"operator", "raf"}, []string{`unknown command "raf" for "stillpoint operator"`, "Did you mean this?", "raft"}},
		{[]string{"nosuch"}, []string{`unknown command "nosuch" for "stillpoint"`, "pause"}},
		{[]string{"pasue"}, []string{`unknown command "pasue" for "stillpoint"`, "Did you mean this?", "pause"}},
		{[]string{"members", "remvoe", "x"}, []string{`unknown command "remvoe" for "stillpoint members"`, "remove"}},
		{[]string{"clock", "prboe"}, []string{`unknown command "prboe" for "stillpoint clock"`, "probe"}},
		{[]string{"help", "nosuch"}, []string{`unknown help topic "nosuch"`}},
		{[]string{"ops", "lsit", "--help"}, []string{`unknown command "lsit" for "stillpoint ops"`, "list"}},
		{[]string{"operator", "raft", "nosuch", "-h"}, []string{`unknown command "nosuch" for "stillpoint operator raft"`}},
		{[]string{"ops", "list", "--bogus"}, []string{"unknown flag: --bogus", "Run 'stillpoint ops list --help'"}},
		{[]string{"pause", "--cluster", "ledger", "--hold", "soon"}, []string{`invalid argument "soon" for "--hold"`}},
		{[]string{"ops", "show"}, []string{"accepts 1 arg"}},
		{[]string{"pause"}, []string{"--cluster is required"}},
		{[]string{"members", "-o", "yaml"}, []string{`--output "yaml": want table or json`}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runMain(t, tc.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, exitUsage, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// A command group run bare shows its help and succeeds.
func TestBareGroupShowsHelp(t *testing.T) {
	for _, args := range [][]string{{"ops"}, {"operator", "raft"}, {}} {
		code, out, errOut := runMain(t, args...)
		if code != 0 || !strings.Contains(out, "Available Commands:") || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout:\n%s", args, code, errOut, out)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, errOut := runMain(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "stillpoint "+version.Version) || errOut != "" {
		t.Fatalf("--version: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out2, _ := runMain(t, "version")
	if code != 0 || out2 != out {
		t.Fatalf("version: exit %d, %q; want the --version line %q", code, out2, out)
	}
	code, js, errOut := runMain(t, "version", "-o", "json")
	var v struct {
		Version   string `json:"version"`
		GoVersion string `json:"go_version"`
	}
	if err := json.Unmarshal([]byte(js), &v); code != 0 || err != nil || v.Version != version.Version || !strings.HasPrefix(v.GoVersion, "go") {
		t.Fatalf("version -o json: exit %d, %v, %q, stderr %q", code, err, js, errOut)
	}
}

// The root help lists the exit statuses every command uses.
func TestRootHelpDocumentsExitStatus(t *testing.T) {
	_, out, _ := runMain(t, "--help")
	for _, w := range []string{"Exit status", "2    usage", "130"} {
		if !strings.Contains(out, w) {
			t.Errorf("stillpoint --help lacks %q:\n%s", w, out)
		}
	}
}
