package command

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
)

func TestSubcommand(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    string // the subcommand, or the error's text
		dir     string // -dir after parsing
		usage   bool   // whether the usage was printed
		wantErr bool
	}{
		{"flags before", []string{"-dir", "x", "up"}, "up", "x", false, false},
		{"flags after", []string{"down", "-dir", "y"}, "down", "y", false, false},
		{"flags on both sides", []string{"-dir", "x", "up", "-dir", "z"}, "up", "z", false, false},
		{"missing", []string{"-dir", "x"}, "missing subcommand: up, down or env", "x", true, true},
		{"unknown", []string{"sideways"}, `unknown subcommand "sideways": want up, down or env`, ".data", true, true},
		{"extra argument", []string{"up", "extra"}, "unexpected arguments: extra", ".data", false, true},
		{"unknown flag", []string{"up", "-port", "1"}, "flag provided but not defined: -port", ".data", true, true},
		{"help", []string{"-h"}, flag.ErrHelp.Error(), ".data", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			fs := NewFlagSet("stack", "usage: stack up|down|env\n", &stderr)
			dir := fs.String("dir", ".data", "state directory")
			got, err := Subcommand(fs, tc.args, "up", "down", "env")
			if tc.wantErr {
				if err == nil || err.Error() != tc.want {
					t.Errorf("Subcommand(%q) = %q, %v; want the error %q", tc.args, got, err, tc.want)
				}
			} else if err != nil || got != tc.want {
				t.Errorf("Subcommand(%q) = %q, %v; want %q", tc.args, got, err, tc.want)
			}
			if *dir != tc.dir {
				t.Errorf("-dir = %q, want %q", *dir, tc.dir)
			}
			if printed := strings.Contains(stderr.String(), "usage: stack up|down|env\n  -dir"); printed != tc.usage {
				t.Errorf("usage printed: %v, want %v; stderr:\n%s", printed, tc.usage, stderr.String())
			}
		})
	}
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		stderr string
	}{
		{nil, 0, ""},
		{flag.ErrHelp, 2, ""},
		{fmt.Errorf("up: %w", flag.ErrHelp), 2, ""},
		{errors.New("no stack under .data"), 1, "stack: no stack under .data\n"},
	} {
		var stderr bytes.Buffer
		if got := exitStatus("stack", &stderr, tc.err); got != tc.status || stderr.String() != tc.stderr {
			t.Errorf("exitStatus(%v) = %d, wrote %q; want %d, %q", tc.err, got, stderr.String(), tc.status, tc.stderr)
		}
	}
}
