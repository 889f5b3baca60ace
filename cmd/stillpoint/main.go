// Command stillpoint is the one binary: coordinator server, sidecar agent,
// operator CLI, simulated node and dev mode.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	// The IANA zone database in the binary: plans, restore plans and --tz
	// name zones, and the image is FROM scratch (no /usr/share/zoneinfo).
	_ "time/tzdata"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit status (see
// exitCodesHelp). Errors are printed here, once, on stderr; a usage error
// adds where to read the command's help.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	helpErr := strictHelpFlag(root)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		err = helpErr()
	}
	code := exitCode(err)
	if err != nil {
		if _, reported := err.(exitError); !reported {
			fmt.Fprintln(stderr, "error:", err)
		}
		if code == exitUsage && cmd != nil {
			if cmd.Name() == "help" && cmd.HasParent() {
				cmd = cmd.Root()
			}
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return code
}
