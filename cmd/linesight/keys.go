package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"

	"github.com/linesight/linesight/internal/trust"
)

func init() {
	commands = append(commands,
		command{"keys generate", "make an ed25519 signing key pair for bundles and commands (DIR/signing.key, DIR/signing.pub)", keysGenerate})
}

func keysGenerate(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("keys generate", flag.ContinueOnError)
	fs.SetOutput(out)
	dir := fs.String("out", "", "folder for signing.key (mode 0600) and signing.pub (required)")
	comment := fs.String("comment", whoami(), "comment on the public key line (who holds the key)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("usage: linesight keys generate --out DIR [--comment TEXT]")
	}
	id, err := trust.Generate(*dir, *comment)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "key %s: private %s (keep it on this machine), public %s (add its line to the stations' bank.trusted_keys)\n",
		id, filepath.Join(*dir, "signing.key"), filepath.Join(*dir, "signing.pub"))
	return nil
}

// whoami is "user@host", for key comments, bundle creators and the audit
// log of CLI changes.
func whoami() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}
