// Package command holds what the repository's commands (the threadline server, ops/stack,
// ops/cluster) share around their run function: the signal handling and exit status of main, and
// the parsing of a command line of one subcommand among flags.
//
// main stays the only place that exits (os.Exit(command.Main(...))); run takes its arguments,
// environment and output as parameters, so that tests call it as main does.
package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Run is a whole program: main gives it the process's arguments (after the program's name),
// environment and output.
type Run func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// Main runs run on the process's arguments, environment and output, with a context that SIGINT
// or SIGTERM cancels, and returns the process's exit status: 0 when run returns nil; 2 when it
// returns flag.ErrHelp, for which a flag set has printed the usage already; otherwise 1, after
// writing the error to stderr behind name.
func Main(name string, run Run) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	return exitStatus(name, os.Stderr, err)
}

func exitStatus(name string, stderr io.Writer, err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 2
	default:
		fmt.Fprintln(stderr, name+":", err)
		return 1
	}
}

// NewFlagSet returns a flag set named name that returns its errors and prints its usage to
// stderr: usage, then the flags with their defaults.
func NewFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// Subcommand parses args into fs, whose flags may stand before and after the subcommand, and
// returns the subcommand. It fails, printing the usage, unless the subcommand is one of
// subcommands, and fails on any argument after it that is not a flag.
func Subcommand(fs *flag.FlagSet, args []string, subcommands ...string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return "", fmt.Errorf("missing subcommand: %s", oneOf(subcommands))
	}
	cmd := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", err
	}
	for _, s := range subcommands {
		if s == cmd {
			if fs.NArg() > 0 {
				return "", fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
			}
			return cmd, nil
		}
	}
	fs.Usage()
	return "", fmt.Errorf("unknown subcommand %q: want %s", cmd, oneOf(subcommands))
}

// oneOf lists names as "a, b or c".
func oneOf(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
