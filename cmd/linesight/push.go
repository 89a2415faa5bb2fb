package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/progress"
	"github.com/linesight/linesight/internal/trust"
	"github.com/linesight/linesight/mqtt"
)

func init() {
	commands = append(commands,
		command{"bank push", "send a bundle to stations over MQTT (resumable blocks; activate, canary); exit 0 when every station took it", bankPush})
}

// pushResult is one station's line of the final table.
type pushResult struct {
	Station string              `json:"station"`
	Result  string              `json:"result"`
	Version uint64              `json:"version,omitempty"`
	Active  bool                `json:"active,omitempty"`
	Seconds float64             `json:"seconds"`
	Check   string              `json:"check,omitempty"`
	Reason  string              `json:"reason,omitempty"`
	Canary  *mqtt.CanaryReport  `json:"canary,omitempty"`
	State   *mqtt.TransferState `json:"-"`
}

func bankPush(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bank push", flag.ContinueOnError)
	fs.SetOutput(out)
	broker := addBrokerFlags(fs)
	stations := fs.String("station", "", "station id, or several separated by commas, pushed in order (required)")
	prefix := fs.String("prefix", "linesight", "topic prefix")
	activate := fs.Bool("activate", false, "activate the bank once stored (after the canary, with --canary)")
	canary := fs.Int("canary", 0, "score the next N frames with both banks first; switch only if verdicts flip on at most --max-flips of them")
	maxFlips := fs.Int("max-flips", 0, "verdict flips the canary allows")
	allowDowngrade := fs.Bool("allow-downgrade", false, "let a station take a bundle whose serial is not above its last")
	blockSize := fs.Int("block-size", mqtt.DefaultBlockSize, "bytes per block (brokers limit packet sizes; 64 KiB fits a 128 KiB limit)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up on a station after this long")
	cont := fs.Bool("continue", false, "go on with the next station after a failure")
	sign := fs.String("sign", "", "sign the push command with this private key (stations with bank.trusted_keys require it)")
	asJSON := fs.Bool("json", false, "print the final table as JSON lines")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *stations == "" {
		return errors.New("usage: linesight bank push FILE --broker URL --station ID[,ID...] [--activate] [--canary N] [--block-size BYTES] [--timeout D] [--continue] [--sign KEY]")
	}
	if *canary > 0 && !*activate {
		return errors.New("bank push: --canary decides whether to activate: give --activate too")
	}
	file, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	// Check the bundle here first: a damaged file fails at once, not on
	// every station.
	bd, err := bank.ReadBundle(bytes.NewReader(file))
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	var signer *trust.Signer
	if *sign != "" {
		if signer, err = trust.LoadSigner(*sign); err != nil {
			return err
		}
	}
	tlsCfg, password, err := broker.creds.Load(*broker.url)
	if err != nil {
		return err
	}
	m := bd.Manifest
	fmt.Fprintf(os.Stderr, "bundle %s: bank version %d, serial %d, %s, %d bytes\n", pos[0], m.Source.Version, m.Serial,
		map[bool]string{true: "signed by " + m.KeyID, false: "unsigned"}[bd.Signed()], len(file))
	ctx, cancel := signalContext()
	defer cancel()
	var results []pushResult
	failed := false
	for _, id := range strings.Split(*stations, ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		if failed && !*cont {
			results = append(results, pushResult{Station: id, Result: "skipped", Reason: "an earlier station failed (--continue goes on)"})
			continue
		}
		bar := progress.New(os.Stderr, id)
		p := &mqtt.Push{Prefix: *prefix, Station: id, BlockSize: *blockSize, Activate: *activate, Canary: *canary, MaxFlips: *maxFlips,
			AllowDowngrade: *allowDowngrade, StationTimeout: *timeout,
			Progress: func(st mqtt.TransferState) {
				if st.Blocks > 0 {
					bar.Update(st.Received, st.Blocks)
				}
			}}
		p.Command = func(offer []byte) ([]byte, error) {
			var o mqtt.Offer
			json.Unmarshal(offer, &o)
			if signer == nil {
				var fields map[string]any
				json.Unmarshal(offer, &fields)
				fields["id"] = o.Transfer
				return json.Marshal(fields)
			}
			sc := signer.SignCommand(id, mqtt.CmdBankPush, offer, time.Now())
			return json.Marshal(map[string]any{"id": o.Transfer, "signed": sc})
		}
		start := time.Now()
		sctx, scancel := context.WithTimeout(ctx, *timeout)
		st, err := p.Send(sctx, mqtt.Dial{Broker: *broker.url, ClientID: fmt.Sprintf("linesight-push-%d-%s", os.Getpid(), id),
			TLS: tlsCfg, Username: broker.creds.Username, Password: password}, file)
		scancel()
		r := pushResult{Station: id, Result: st.State, Version: st.Version, Active: st.Active, Seconds: time.Since(start).Seconds(),
			Check: st.Check, Reason: st.Reason, Canary: st.Canary}
		if err != nil {
			failed = true
			if r.Reason == "" {
				r.Result, r.Reason = "failed", err.Error()
			}
		}
		results = append(results, r)
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		for _, r := range results {
			enc.Encode(r)
		}
	} else {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STATION\tRESULT\tVERSION\tTIME\tREASON")
		for _, r := range results {
			ver := "-"
			if r.Version > 0 {
				ver = fmt.Sprint(r.Version)
				if r.Active {
					ver += " (active)"
				}
			}
			reason := r.Reason
			if r.Check != "" {
				reason = r.Check + ": " + strings.TrimPrefix(reason, r.Check+": ")
			}
			if c := r.Canary; c != nil {
				reason = strings.TrimSpace(fmt.Sprintf("%s canary: %d frames, %d flips, correlation %.3f", reason, c.Frames, c.Flips, c.Correlation))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.1fs\t%s\n", r.Station, r.Result, ver, r.Seconds, reason)
		}
		tw.Flush()
	}
	for _, r := range results {
		if r.Result != mqtt.StateDone {
			return fmt.Errorf("bank push: not every station took the bundle")
		}
	}
	return nil
}
