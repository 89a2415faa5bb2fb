// Command linesight is the Linesight edge anomaly-detection tool and daemon.
// Each subcommand parses its flags and calls a package; see `linesight help`.
package main

import (
	"fmt"
	"io"
	"os"
)

// command is one subcommand: run parses args and writes to out.
type command struct {
	name, summary string
	run           func(args []string, out io.Writer) error
}

// commands lists the subcommands in help order; other files append theirs
// in init (package-level initialisers run before every init).
var commands = []command{
	{"model info", "describe a .tflite model: inputs, outputs, operators [--tensors]", modelInfo},
	{"model run", "run a .tflite model on images: top-K classes, taps, tensor dumps", modelRun},
	{"version", "print the version", func(_ []string, out io.Writer) error {
		_, err := fmt.Fprintln(out, "linesight", version)
		return err
	}},
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "linesight:", err)
		os.Exit(1)
	}
}

// run finds the longest subcommand that prefixes args and calls it.
func run(args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		return usage(out)
	}
	var best *command
	bestLen := 0
	for i := range commands {
		words := splitWords(commands[i].name)
		if len(words) <= len(args) && equalWords(words, args[:len(words)]) && len(words) > bestLen {
			best, bestLen = &commands[i], len(words)
		}
	}
	if best == nil {
		usage(out)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return best.run(args[bestLen:], out)
}

func usage(out io.Writer) error {
	fmt.Fprintln(out, "usage: linesight <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(out, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(out, "\n`linesight <command> -h` shows a command's flags.")
	return nil
}

func splitWords(s string) []string {
	var w []string
	start := -1
	for i, r := range s + " " {
		if r == ' ' {
			if start >= 0 {
				w = append(w, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	return w
}

func equalWords(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
