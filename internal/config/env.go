package config

import (
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// EnvPrefix is the prefix of every Stillpoint environment variable.
const EnvPrefix = "STILLPOINT"

// EnvName is the variable that feeds flag: prefix + "_" + the flag name
// upper-cased with dashes as underscores ("gossip-bind" → STILLPOINT_GOSSIP_BIND).
func EnvName(prefix, flag string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// BindEnv sets every flag of cmd (its own and inherited) that was not set
// on the command line from its environment variable (EnvName), so that
// flags > env. A flag set this way counts as Changed, so ApplyFlags carries
// it over the file. Every bad value is reported.
func BindEnv(cmd *cobra.Command, prefix string) error {
	return bindEnv(cmd.Flags(), prefix, os.LookupEnv)
}

func bindEnv(fs *pflag.FlagSet, prefix string, lookup func(string) (string, bool)) error {
	var p Problems
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		name := EnvName(prefix, f.Name)
		v, ok := lookup(name)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			p.Addf("environment %s=%q (flag --%s): %v", name, v, f.Name, err)
		}
	})
	return p.Err()
}
