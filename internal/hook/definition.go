// Package hook runs the backup hooks an agent (or a coordinator server)
// defines in its own config file. A backup plan only names a hook; the
// command line behind the name never crosses the wire.
package hook

import "time"

// Definition is one hook in an agent's or server's config file (`hooks:`).
type Definition struct {
	// Name is what a backup plan calls it (e.g. "pg-dump-ledger").
	Name string `yaml:"name"`
	// Command is run directly (no shell); an absolute path or a name on
	// PATH.
	Command string   `yaml:"command"`
	Args    []string `yaml:"args"`
	// Dir is the working directory; empty means the agent's.
	Dir string `yaml:"dir"`
	// Timeout kills the hook's whole process group; must be > 0.
	Timeout time.Duration `yaml:"timeout"`
	// Env is added to the hook's environment (besides the STILLPOINT_*
	// variables the backup passes).
	Env map[string]string `yaml:"env"`
}

// Names lists the definitions' names in order.
func Names(defs []Definition) []string {
	out := make([]string, 0, len(defs))
	for _, d := range defs {
		out = append(out, d.Name)
	}
	return out
}
