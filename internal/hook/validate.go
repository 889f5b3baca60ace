package hook

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/stillpoint-dev/stillpoint/internal/config"
)

// MaxNameLen is the longest hook name accepted.
const MaxNameLen = 64

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// envKeyRE is what a variable name in Definition.Env may look like.
var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidName reports whether s is a valid hook name: [a-z0-9][a-z0-9._-]*,
// at most MaxNameLen bytes.
func ValidName(s string) bool { return len(s) <= MaxNameLen && nameRE.MatchString(s) }

// Validate reports every problem of a `hooks:` list at once, one line
// each, naming the hook's index, name and field (for example
// `hooks[2].timeout: must be > 0, got 0s (hook "pg-dump")`). The result is a
// config.Problems error (nil when all is well); a caller prefixes it with
// config.Problems.Merge if the list is nested.
func Validate(defs []Definition) error {
	var p config.Problems
	seen := make(map[string]int, len(defs))
	for i, d := range defs {
		at := fmt.Sprintf("hooks[%d]", i)
		// who names the hook after the problem: "(hook \"pg-dump\")".
		who := ""
		if d.Name != "" {
			who = fmt.Sprintf(" (hook %q)", d.Name)
		}
		switch {
		case d.Name == "":
			p.Addf("%s.name: required (what a backup plan calls this hook)%s", at, who)
		case !ValidName(d.Name):
			p.Addf("%s.name: must match [a-z0-9][a-z0-9._-]* and be at most %d bytes%s", at, MaxNameLen, who)
		default:
			if j, dup := seen[d.Name]; dup {
				p.Addf("%s.name: duplicate of hooks[%d]%s", at, j, who)
			} else {
				seen[d.Name] = i
			}
		}
		switch {
		case strings.TrimSpace(d.Command) == "":
			p.Addf("%s.command: required (an absolute path, or a program name looked up on PATH; run directly, not through a shell)%s", at, who)
		case strings.ContainsRune(d.Command, 0):
			p.Addf("%s.command: contains a NUL byte%s", at, who)
		case strings.ContainsRune(d.Command, '/') && !filepath.IsAbs(d.Command):
			p.Addf("%s.command %q: a path must be absolute (or give a bare program name looked up on PATH)%s", at, d.Command, who)
		}
		for j, a := range d.Args {
			if strings.ContainsRune(a, 0) {
				p.Addf("%s.args[%d]: contains a NUL byte%s", at, j, who)
			}
		}
		if d.Dir != "" && !filepath.IsAbs(d.Dir) {
			p.Addf("%s.dir %q: must be an absolute path (or empty for the agent's working directory)%s", at, d.Dir, who)
		}
		if d.Timeout <= 0 {
			p.Addf("%s.timeout: must be > 0, got %s%s", at, d.Timeout, who)
		}
		for _, k := range sortedKeys(d.Env) {
			switch {
			case !envKeyRE.MatchString(k):
				p.Addf("%s.env %q: not a valid variable name (letters, digits and _, not starting with a digit)%s", at, k, who)
			case strings.HasPrefix(k, EnvPrefix):
				p.Addf("%s.env %q: names starting with %s are reserved for the variables the backup passes%s", at, k, EnvPrefix, who)
			}
			if strings.ContainsRune(d.Env[k], 0) {
				p.Addf("%s.env %q: value contains a NUL byte%s", at, k, who)
			}
		}
	}
	return p.Err()
}

// ValidateRequestEnv checks the variables a caller (a backup runner)
// passes to a hook: every key must start with STILLPOINT_ and be a valid
// variable name, and no value may contain a NUL byte. The error names
// the first bad key (in sorted order).
func ValidateRequestEnv(env map[string]string) error {
	for _, k := range sortedKeys(env) {
		if !strings.HasPrefix(k, EnvPrefix) {
			return fmt.Errorf("env %q: only variables named %s* may be passed to a hook", k, EnvPrefix)
		}
		if !envKeyRE.MatchString(k) || k == EnvPrefix {
			return fmt.Errorf("env %q: not a valid variable name", k)
		}
		if strings.ContainsRune(env[k], 0) {
			return fmt.Errorf("env %q: value contains a NUL byte", k)
		}
	}
	return nil
}
