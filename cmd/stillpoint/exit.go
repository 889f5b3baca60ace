package main

import (
	"errors"
	"fmt"
)

// Exit statuses, the same for every command (listed in `stillpoint --help`).
const (
	exitOK = 0
	// exitFailed: the command could not do what was asked (the coordinator
	// refused or failed, a server is unreachable, a config is invalid).
	exitFailed = 1
	// exitUsage: the command line is wrong (unknown command or flag, a
	// flag value out of range, wrong number of arguments). Nothing was sent.
	exitUsage = 2
	// exitNotCompleted: the command ran, and its answer is "no": a pause
	// or watched operation ended aborted or invalid, drift found a node
	// that would not be admitted, a clock probe is not synchronized.
	exitNotCompleted = 3
	// exitDetached: interrupted (Ctrl-C) or --wait ran out while following
	// an operation; the operation goes on on the coordinator.
	exitDetached = 130
)

// exitCodesHelp documents the statuses in the root command's help.
const exitCodesHelp = `Exit status (every command):
  0    success
  1    failed: the coordinator refused or failed, a server is unreachable,
       a configuration is invalid
  2    usage: unknown command or flag, bad flag value, wrong arguments
       (nothing was sent)
  3    done, but the answer is no: a pause ended aborted or invalid, a node
       would not be admitted (drift), a clock is not synchronized
  130  interrupted or detached (Ctrl-C, --wait ran out): an operation goes
       on on the coordinator`

// exitError carries an exit code for an outcome already reported.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError is a wrong command line: exit status 2 and a pointer to the
// command's help.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef builds a usageError.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// asUsage marks err (when not nil) as a usage error.
func asUsage(err error) error {
	if err == nil {
		return nil
	}
	var ue usageError
	if errors.As(err, &ue) {
		return err
	}
	return usageError{err}
}

// exitCode is the exit status for the outcome err.
func exitCode(err error) int {
	var ee exitError
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		return exitUsage
	}
	return exitFailed
}
