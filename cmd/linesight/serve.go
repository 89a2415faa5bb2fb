package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/linesight/linesight/config"
	"github.com/linesight/linesight/daemon"
)

func init() {
	commands = append(commands, command{"serve", "run the station: camera -> PatchCore -> MQTT, with health, metrics and systemd notify", serveCmd})
}

// loadConfig reads --config (default: /etc/linesight/linesight.yaml when it
// exists, else defaults) with --set overrides, and validates it.
func loadConfig(path string, sets []string) (*config.Loaded, error) {
	if path == "" {
		if _, err := os.Stat(config.DefaultPath); err == nil {
			path = config.DefaultPath
		}
	}
	l, err := config.Load(path, sets)
	if err != nil {
		return nil, err
	}
	return l, l.Validate()
}

func newLogger(c *config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serveCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(out)
	path := fs.String("config", "", "config file (default "+config.DefaultPath+" if it exists)")
	sets := setFlags(fs)
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return errors.New("usage: linesight serve [--config FILE] [--set key.path=value]...")
	}
	cfg, err := loadConfig(*path, *sets)
	if err != nil {
		return err
	}
	daemon.Version = version
	log := newLogger(&cfg.Config, os.Stderr)
	ctx, cancel := signalContext()
	defer cancel()
	// SIGHUP (a closed terminal, or `systemctl kill -s HUP`) must not end
	// the station: its default action would, with no drain.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				log.Warn("SIGHUP ignored: the configuration is read at start; restart the service to apply changes")
			case <-ctx.Done():
				return
			}
		}
	}()
	return daemon.Run(ctx, cfg, log)
}
