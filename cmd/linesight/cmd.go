package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/linesight/linesight/internal/trust"
	"github.com/linesight/linesight/mqtt"
)

func init() {
	commands = append(commands,
		command{"cmd", "send one command to a station (signed with --sign) and print its reply", cmdCmd})
}

// cmdCmd publishes <prefix>/<station>/cmd/<name> and waits for the reply
// with the same id on cmd/<name>/reply. State-changing commands must be
// signed with a key the station trusts (bank.trusted_keys) unless the
// station allows unsigned ones.
func cmdCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("cmd", flag.ContinueOnError)
	fs.SetOutput(out)
	broker := addBrokerFlags(fs)
	prefix := fs.String("prefix", "linesight", "topic prefix")
	sign := fs.String("sign", "", "signing key (`linesight keys generate`) for state-changing commands")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the reply")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 || len(pos) > 3 {
		return errors.New("usage: linesight cmd STATION NAME [JSON] [--sign KEY] [--broker URL] [--prefix P] [--timeout D]\n" +
			"  e.g. linesight cmd line1 threshold '{\"set\":12.5}' --sign keys/signing.key\n" +
			"  commands: " + mqtt.CmdTrigger + ", " + mqtt.CmdStatus + ", " + mqtt.CmdThreshold + ", " + mqtt.CmdBankActivate + ", " + mqtt.CmdBankRollback +
			", " + mqtt.CmdBankEnroll + " (better: linesight enroll), " + mqtt.CmdBankAppend)
	}
	station, name := pos[0], pos[1]
	body := []byte("{}")
	if len(pos) == 3 {
		body = []byte(pos[2])
	}
	cs, err := sendCommand(broker, *prefix, station, name, body, *sign)
	if err != nil {
		return err
	}
	defer cs.close()
	select {
	case p := <-cs.replies:
		var r mqtt.Reply
		json.Unmarshal(p, &r)
		var pretty bytes.Buffer
		json.Indent(&pretty, p, "", "  ")
		fmt.Fprintln(out, pretty.String())
		if !r.OK {
			return fmt.Errorf("cmd: %s refused %s: %s", station, name, r.Error)
		}
		return nil
	case <-time.After(*timeout):
		return fmt.Errorf("cmd: no reply from %s to %s within %v (is the station online, and the prefix %q right?)", station, name, *timeout, *prefix)
	}
}

// sentCommand is a command sent, waiting for its replies.
type sentCommand struct {
	id      string
	sub     *mqtt.Subscriber
	replies chan []byte // the raw replies with this command's id
}

func (c *sentCommand) close() { c.sub.Close() }

// sendCommand subscribes to cmd/<name>/reply, then publishes cmd/<name>
// with body's fields and a fresh id, signed with the key in sign when it
// is not "". Replies with the command's id arrive on replies.
func sendCommand(broker *brokerFlags, prefix, station, name string, body []byte, sign string) (*sentCommand, error) {
	var fields map[string]any
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("cmd: the command's fields must be a JSON object: %q", body)
	}
	var n [8]byte
	rand.Read(n[:])
	id := hex.EncodeToString(n[:])
	var payload []byte
	if sign != "" {
		signer, err := trust.LoadSigner(sign)
		if err != nil {
			return nil, err
		}
		var compact bytes.Buffer
		json.Compact(&compact, body)
		payload, _ = json.Marshal(map[string]any{"id": id, "signed": signer.SignCommand(station, name, compact.Bytes(), time.Now())})
	} else {
		fields["id"] = id
		payload, _ = json.Marshal(fields)
	}
	topic := prefix + "/" + station + "/" + mqtt.TopicCommandPrefix + name
	c := &sentCommand{id: id, replies: make(chan []byte, 64)}
	sub, err := broker.subscribe(fmt.Sprintf("linesight-cmd-%d-%s", os.Getpid(), id[:6]), topic+mqtt.TopicReplySuffix, func(_ string, p []byte, retained bool) {
		var r mqtt.Reply
		if retained || json.Unmarshal(p, &r) != nil || r.ID != id {
			return // an old or someone else's reply
		}
		for {
			select {
			case c.replies <- append([]byte(nil), p...):
				return
			default: // full of progress nobody read: the oldest goes, the last reply matters
				select {
				case <-c.replies:
				default:
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	c.sub = sub
	if err := sub.Publish(topic, 1, false, payload); err != nil {
		sub.Close()
		return nil, err
	}
	return c, nil
}
