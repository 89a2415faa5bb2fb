package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/linesight/linesight/config"
)

func init() {
	commands = append(commands, command{"config check", "check a config file (with --set overrides): print what is wrong or the effective config", configCheck})
}

// setFlags adds the repeatable --set key.path=value flag.
func setFlags(fs *flag.FlagSet) *stringList {
	var sets stringList
	fs.Var(&sets, "set", "override a config key: key.path=value (repeatable)")
	return &sets
}

func configCheck(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(out)
	sets := setFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return errors.New("usage: linesight config check [FILE] [--set key.path=value]...")
	}
	path := ""
	if len(pos) == 1 {
		path = pos[0]
	}
	l, err := config.Load(path, *sets)
	if err != nil {
		return err
	}
	if err := l.Validate(); err != nil {
		return err
	}
	y, err := l.YAML()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "# %s: OK. Effective configuration:\n%s", map[bool]string{true: "defaults and overrides", false: path}[path == ""], y)
	return nil
}
