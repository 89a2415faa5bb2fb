package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/linesight/linesight/mqtt"
)

func init() {
	commands = append(commands,
		command{"enroll", "teach a running station: it takes its next N frames as good parts and builds a bank on the device", enrollCmd})
}

// enrollCmd sends cmd/bank/enroll and follows its progress replies until
// the station reports the bank stored or the enrollment failed.
func enrollCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	fs.SetOutput(out)
	broker := addBrokerFlags(fs)
	prefix := fs.String("prefix", "linesight", "topic prefix")
	sign := fs.String("sign", "", "signing key (`linesight keys generate`); needed unless the station allows unsigned changes")
	var req mqtt.EnrollRequest
	fs.IntVar(&req.Count, "count", 30, "good parts to take (2..1000); in triggered mode, one per trigger")
	fs.BoolVar(&req.Activate, "activate", false, "put the new bank in use when it is built")
	fs.StringVar(&req.Note, "note", "", "free text stored with the bank")
	every := fs.Duration("every", 0, "at least this long between two frames taken (continuous cameras: other parts, not the same part again)")
	timeout := fs.Duration("timeout", time.Hour, "the station gives up when the frames have not all come within this (the build is not limited); this command waits for the build a further 10 minutes")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: linesight enroll STATION [--count 30] [--activate] [--every D] [--note TEXT] [--sign KEY] [--broker URL] [--timeout 1h]")
	}
	req.Interval = int(every.Milliseconds())
	req.Timeout = int(math.Ceil(timeout.Seconds()))
	if req.Timeout < 1 {
		return errors.New("enroll: --timeout must be at least 1s")
	}
	body, _ := json.Marshal(req)
	station := pos[0]
	cs, err := sendCommand(broker, *prefix, station, mqtt.CmdBankEnroll, body, *sign)
	if err != nil {
		return err
	}
	defer cs.close()
	// The station answers at once, then as frames come in and the build
	// goes on; silence for a while is normal in triggered mode.
	deadline := time.After(*timeout + 10*time.Minute)
	first := time.After(10 * time.Second)
	for {
		select {
		case p := <-cs.replies:
			first = nil
			var r struct {
				OK     bool             `json:"ok"`
				Error  string           `json:"error"`
				Result mqtt.EnrollState `json:"result"`
			}
			if err := json.Unmarshal(p, &r); err != nil {
				return fmt.Errorf("enroll: reply from %s: %w", station, err)
			}
			st := r.Result
			switch {
			case !r.OK && st.State == "":
				return fmt.Errorf("enroll: %s refused: %s", station, r.Error)
			case st.State == mqtt.EnrollFailed:
				return fmt.Errorf("enroll: failed on %s after %d of %d frames: %s", station, st.Captured, st.Count, st.Error)
			case st.State == mqtt.EnrollCapturing:
				fmt.Fprintf(out, "capturing  %d of %d good parts\n", st.Captured, st.Count)
			case st.State == mqtt.EnrollBuilding && st.Stage != "":
				fmt.Fprintf(out, "building   %s %d/%d\n", st.Stage, st.Done, st.Total)
			case st.State == mqtt.EnrollBuilding:
				fmt.Fprintf(out, "building   from %d frames\n", st.Captured)
			case st.State == mqtt.EnrollDone:
				active := "stored, not active (activate with `linesight cmd " + station + " bank/activate '{\"version\":" + fmt.Sprint(st.Version) + "}'`)"
				if st.Active {
					active = "stored and active"
				}
				fmt.Fprintf(out, "bank version %d %s\n  threshold %.4f", st.Version, active, st.Threshold)
				if st.ExpectedFRR > 0 {
					fmt.Fprintf(out, ", expected false-reject rate %.2g%%", 100*st.ExpectedFRR)
				}
				fmt.Fprintln(out)
				if st.ThresholdOverride != nil {
					fmt.Fprintf(out, "  NOTE: the operator's threshold %.4f stays in force over it (linesight cmd %s threshold '{\"reset\":true}' returns to the bank's)\n", *st.ThresholdOverride, station)
				}
				return nil
			}
		case <-first:
			return fmt.Errorf("enroll: no reply from %s within 10s (is the station online, and the prefix %q right?)", station, *prefix)
		case <-deadline:
			return fmt.Errorf("enroll: %s did not finish within %v", station, *timeout)
		}
	}
}
