package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// finishTree makes every command of the finished tree fail the same way on
// a wrong command line, whoever wrote it: an unknown subcommand at any
// level is an error naming it with cobra's suggestions, and a bad flag or
// argument count is a usageError (exit 2). A group run bare shows its help.
// It also adds cobra's help and completion commands so that they get the
// same treatment.
func finishTree(root *cobra.Command) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return asUsage(err) })
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			strictHelp(c)
		case "completion":
			c.Example = "  stillpoint completion bash > /etc/bash_completion.d/stillpoint\n  source <(stillpoint completion zsh)"
		}
	}
	var visit func(*cobra.Command)
	visit = func(c *cobra.Command) {
		strictArgs(c)
		for _, sub := range c.Commands() {
			visit(sub)
		}
	}
	visit(root)
}

// strictArgs wraps c's argument check: on a command with subcommands an
// unexpected first argument is an unknown subcommand; any rejection is a
// usageError.
func strictArgs(c *cobra.Command) {
	if c.Hidden || c.Name() == "help" {
		return
	}
	check := c.Args
	if c.HasSubCommands() {
		if !c.Runnable() {
			// A bare group shows its help; anything after it must be one
			// of its subcommands (cobra would print the help and exit 0).
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
			check = cobra.NoArgs
		}
		if check == nil {
			check = cobra.NoArgs
		}
	}
	if check == nil {
		return
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		err := check(cmd, args)
		if err != nil && cmd.HasSubCommands() && len(args) > 0 {
			return unknownCommand(cmd, args[0])
		}
		return asUsage(err)
	}
}

// unknownCommand is cobra's "unknown command" error with its suggestions,
// or the list of subcommands when none is near.
func unknownCommand(c *cobra.Command, arg string) error {
	msg := fmt.Sprintf("unknown command %q for %q", arg, c.CommandPath())
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's default, set only on its own path
	}
	if s := c.SuggestionsFor(arg); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	} else {
		var names []string
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				names = append(names, sub.Name())
			}
		}
		msg += "; its commands are " + strings.Join(names, ", ")
	}
	return usageError{fmt.Errorf("%s", msg)}
}

// strictHelpFlag makes `stillpoint ops lsit --help` an unknown command
// instead of the group's help with exit 0: cobra answers --help before it
// checks arguments and its Execute returns no error for help, so the
// error is kept here for run to return.
func strictHelpFlag(root *cobra.Command) (helpErr func() error) {
	var err error
	show := root.HelpFunc()
	root.SetHelpFunc(func(c *cobra.Command, args []string) {
		if rest := c.Flags().Args(); c.HasAvailableSubCommands() && len(rest) > 0 && c.Flags().Parsed() {
			err = unknownCommand(c, rest[0])
			return
		}
		show(c, args)
	})
	return func() error { return err }
}

// strictHelp makes `stillpoint help X` fail on an unknown X instead of
// printing the root help and exiting 0.
func strictHelp(help *cobra.Command) {
	help.Run = nil
	help.Example = "  stillpoint help pause\n  stillpoint help operator raft list-peers"
	help.RunE = func(c *cobra.Command, args []string) error {
		cmd, rest, err := c.Root().Find(args)
		if err != nil || cmd == nil || len(rest) > 0 {
			return usagef("unknown help topic %q: see 'stillpoint --help' for the commands", strings.Join(args, " "))
		}
		cmd.InitDefaultHelpFlag()
		cmd.InitDefaultVersionFlag()
		return cmd.Help()
	}
}
