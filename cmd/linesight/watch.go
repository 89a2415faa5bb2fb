package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/linesight/linesight/internal/sampleline"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

func init() {
	commands = append(commands,
		command{"watch", "subscribe to a station's results and print one line per frame (what the PLC/SCADA side sees)", watchCmd},
		command{"sample-line", "write a small synthetic inspection line (good parts, defects, masks; --kind washer, strip or small) for the demo", sampleLineCmd},
	)
}

func sampleLineCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("sample-line", flag.ContinueOnError)
	fs.SetOutput(out)
	var n sampleline.Counts
	fs.IntVar(&n.Train, "train", 60, "good training images")
	fs.IntVar(&n.TestGood, "test-good", 10, "good test images")
	fs.IntVar(&n.PerDefect, "per-defect", 5, "test images per defect type")
	seed := fs.Uint64("seed", 1, "seed")
	kind := fs.String("kind", sampleline.KindWasher, "washer (256x256 square frames), strip (500x1250 strips, thin cracks and scratches 2-4 px wide) or small (small parts in 640x480 frames, small chips and spots)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: linesight sample-line DIR [--kind washer|strip|small] [--train 60] [--test-good 10] [--per-defect 5]")
	}
	defects, err := sampleline.DefectsOf(*kind)
	if err != nil {
		return err
	}
	if err := sampleline.WriteKind(pos[0], *kind, n, *seed); err != nil {
		return err
	}
	fmt.Fprintf(out, "sample line (%s) in %s: %d good training parts; test: %d good, %d each of %s (with masks)\n",
		*kind, pos[0], n.Train, n.TestGood, n.PerDefect, strings.Join(defects, ", "))
	return nil
}

// brokerFlags are the connection flags of the commands that talk to a
// station's broker: the URL and the same credentials a station's config
// takes (mqtt.username, mqtt.password_file, mqtt.tls.*).
type brokerFlags struct {
	url   *string
	creds mqtt.Credentials
}

func addBrokerFlags(fs *flag.FlagSet) *brokerFlags {
	b := &brokerFlags{url: fs.String("broker", "tcp://127.0.0.1:1883", "broker URL (tcp://, ssl://, ws://, wss://)")}
	fs.StringVar(&b.creds.Username, "username", "", "MQTT username")
	fs.StringVar(&b.creds.PasswordFile, "password-file", "", "file holding the MQTT password")
	fs.StringVar(&b.creds.CA, "ca", "", "PEM CA certificates to trust for ssl:// (default: the system's)")
	fs.StringVar(&b.creds.Cert, "cert", "", "PEM client certificate")
	fs.StringVar(&b.creds.Key, "key", "", "PEM client key")
	return b
}

// subscribe connects as a plain subscriber with the flags' credentials.
func (b *brokerFlags) subscribe(clientID, topic string, fn func(topic string, payload []byte, retained bool)) (*mqtt.Subscriber, error) {
	t, password, err := b.creds.Load(*b.url)
	if err != nil {
		return nil, err
	}
	return mqtt.Subscribe(*b.url, clientID, topic, t, b.creds.Username, password, fn)
}

func watchCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(out)
	broker := addBrokerFlags(fs)
	prefix := fs.String("prefix", "linesight", "topic prefix")
	station := fs.String("station", "+", "station id (+ = all)")
	count := fs.Int("count", 0, "exit after this many results (0 = until interrupted)")
	timeout := fs.Duration("timeout", 0, "exit after this long without a result (0 = never)")
	labels := fs.String("labels", "", "file of `seq label` lines (good/defect): print image AUROC of the watched scores")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	var mu sync.Mutex
	got := 0
	var scores []float64
	var seqs []uint64
	verdicts := map[string]int{}
	last := make(chan struct{}, 1)
	sub, err := broker.subscribe(fmt.Sprintf("linesight-watch-%d", os.Getpid()), *prefix+"/"+*station+"/#",
		func(topic string, payload []byte, retained bool) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case strings.HasSuffix(topic, "/"+mqtt.TopicStatus):
				fmt.Fprintf(out, "status  %s\n", payload)
			case strings.HasSuffix(topic, "/"+mqtt.TopicResult):
				var r mqtt.Result
				if json.Unmarshal(payload, &r) != nil {
					fmt.Fprintf(out, "result  (unparseable) %s\n", payload)
					return
				}
				m := ""
				if r.Map != nil {
					m = "  map " + r.Map.Topic
				}
				fmt.Fprintf(out, "seq %4d  %s  score %8.4f  normalized %.3f  %6.1f ms  %d regions%s\n", r.Seq, r.Verdict, r.Score, r.Normalized, r.Latency.Total, len(r.Regions), m)
				got++
				verdicts[r.Verdict]++
				scores = append(scores, r.Score)
				seqs = append(seqs, r.Seq)
				select {
				case last <- struct{}{}:
				default:
				}
			}
		})
	if err != nil {
		return err
	}
	defer sub.Close()
	ctx, cancel := signalContext()
	defer cancel()
	for {
		var tc <-chan time.Time
		if *timeout > 0 {
			tc = time.After(*timeout)
		}
		select {
		case <-ctx.Done():
		case <-tc:
		case <-last:
			mu.Lock()
			done := *count > 0 && got >= *count
			mu.Unlock()
			if !done {
				continue
			}
		}
		break
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(out, "summary: %d results: %d PASS, %d FAIL\n", got, verdicts[mqtt.Pass], verdicts[mqtt.Fail])
	if *labels != "" {
		return printAUROC(out, *labels, seqs, scores)
	}
	return nil
}

func printAUROC(out io.Writer, path string, seqs []uint64, scores []float64) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lab := map[uint64]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var seq uint64
		var l string
		if _, err := fmt.Sscan(line, &seq, &l); err == nil {
			lab[seq] = l != "good"
		}
	}
	var s []float64
	var y []bool
	type row struct {
		seq   uint64
		score float64
	}
	var rows []row
	for i, q := range seqs {
		if l, ok := lab[q]; ok {
			s, y = append(s, scores[i]), append(y, l)
			rows = append(rows, row{q, scores[i]})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].seq < rows[j].seq })
	a, err := patchcore.AUROC(s, y)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "image AUROC of the published scores over %d labelled frames: %.4f\n", len(s), a)
	return nil
}
