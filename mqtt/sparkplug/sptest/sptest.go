// Package sptest is what Sparkplug tests share: an independent decoder
// (Debian's python3-protobuf with sparkplug_b.proto compiled by protoc at
// test time, not the Go code under test) and a recorder of everything a
// broker carries under spBv1.0/, with each message's QoS and retain flag.
package sptest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/linesight/linesight/internal/testenv"
)

// Py is the Python decoder.
type Py struct {
	python, dir, script string
}

// python finds an interpreter with google.protobuf (Debian's
// python3-protobuf lives under /usr/bin/python3; a pyenv shim earlier on
// PATH may not have it).
func python() string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import google.protobuf").Run() == nil {
			return p
		}
	}
	return ""
}

// Decoder compiles sparkplug_b.proto with protoc into a temporary folder
// for Python; the test is skipped when protoc or python3-protobuf is
// missing (scripts/deps.sh test installs them).
func Decoder(t testing.TB) *Py {
	t.Helper()
	py := python()
	protoc, err := exec.LookPath("protoc")
	if py == "" || err != nil {
		t.Skipf("skipping %s: it needs protoc and python3-protobuf (apt install protobuf-compiler python3-protobuf)", t.Name())
	}
	src := filepath.Join(testenv.ModuleRoot(t), "mqtt", "sparkplug")
	dir := t.TempDir()
	if out, err := exec.Command(protoc, "-I", src, "--python_out="+dir, filepath.Join(src, "sparkplug_b.proto")).CombinedOutput(); err != nil {
		t.Fatalf("protoc --python_out: %v\n%s", err, out)
	}
	return &Py{python: py, dir: dir, script: filepath.Join(src, "testdata", "spdecode.py")}
}

func (p *Py) run(t testing.TB, mode string, lines [][]byte) [][]byte {
	t.Helper()
	cmd := exec.Command(p.python, p.script, p.dir, mode)
	cmd.Stdin = bytes.NewReader(append(bytes.Join(lines, []byte("\n")), '\n'))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("spdecode.py %s: %v\n%s", mode, err, stderr.String())
	}
	var res [][]byte
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		res = append(res, append([]byte(nil), sc.Bytes()...))
	}
	if len(res) != len(lines) {
		t.Fatalf("spdecode.py %s: %d answers to %d lines", mode, len(res), len(lines))
	}
	return res
}

// Decode decodes payloads into dicts keyed by the .proto's field names.
func (p *Py) Decode(t testing.TB, payloads ...[]byte) []map[string]any {
	t.Helper()
	if len(payloads) == 0 {
		return nil
	}
	lines := make([][]byte, len(payloads))
	for i, b := range payloads {
		lines[i], _ = json.Marshal(map[string]string{"payload": base64.StdEncoding.EncodeToString(b)})
	}
	var out []map[string]any
	for _, l := range p.run(t, "decode", lines) {
		d := json.NewDecoder(bytes.NewReader(l))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// Encode encodes a Payload given as a dict (as Decode returns them).
func (p *Py) Encode(t testing.TB, payload map[string]any) []byte {
	t.Helper()
	line, _ := json.Marshal(payload)
	var r struct{ Payload string }
	if err := json.Unmarshal(p.run(t, "encode", [][]byte{line})[0], &r); err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(r.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Msg is one message a Recorder saw.
type Msg struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
	At       time.Time
}

// Recorder subscribes to a topic filter (QoS 1, so that each message keeps
// the QoS it was published with, up to 1) and keeps what comes, in order.
type Recorder struct {
	mu   sync.Mutex
	msgs []Msg
	c    paho.Client
}

// Record connects to broker and records filter until the test ends.
func Record(t testing.TB, broker, filter string) *Recorder {
	t.Helper()
	r := &Recorder{}
	po := paho.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("sprec-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(true).SetOrderMatters(true)
	r.c = paho.NewClient(po)
	if tok := r.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("recorder connect: %v", tok.Error())
	}
	tok := r.c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.msgs = append(r.msgs, Msg{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...), QoS: m.Qos(), Retained: m.Retained(), At: time.Now()})
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("recorder subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { r.c.Disconnect(0) })
	return r
}

// Publish sends a message from the recorder's connection (a host's
// command, a STATE).
func (r *Recorder) Publish(t testing.TB, topic string, qos byte, retained bool, payload []byte) {
	t.Helper()
	if tok := r.c.Publish(topic, qos, retained, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// Messages returns the messages seen so far whose topic contains sub
// ("" = all).
func (r *Recorder) Messages(sub string) []Msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Msg
	for _, m := range r.msgs {
		if strings.Contains(m.Topic, sub) {
			out = append(out, m)
		}
	}
	return out
}

// Wait waits until at least n messages whose topic contains sub arrived.
func (r *Recorder) Wait(t testing.TB, sub string, n int, within time.Duration) []Msg {
	t.Helper()
	var got []Msg
	testenv.Eventually(t, within, func() bool { got = r.Messages(sub); return len(got) >= n },
		fmt.Sprintf("%d messages on *%s*", n, sub))
	return got
}

// Metric is the metric named name in a decoded payload (nil when absent).
func Metric(p map[string]any, name string) map[string]any {
	ms, _ := p["metrics"].([]any)
	for _, m := range ms {
		mm, _ := m.(map[string]any)
		if mm["name"] == name {
			return mm
		}
	}
	return nil
}

// ByAlias is the metric with alias a in a decoded payload (nil when
// absent).
func ByAlias(p map[string]any, a uint64) map[string]any {
	ms, _ := p["metrics"].([]any)
	for _, m := range ms {
		mm, _ := m.(map[string]any)
		if Uint(mm["alias"]) == a {
			return mm
		}
	}
	return nil
}

// Uint reads a decoded integer (json.Number), 1<<64-1 when absent.
func Uint(v any) uint64 {
	n, ok := v.(json.Number)
	if !ok {
		return 1<<64 - 1
	}
	var u uint64
	fmt.Sscan(string(n), &u)
	return u
}

// Float reads a decoded number.
func Float(v any) float64 {
	n, _ := v.(json.Number)
	f, _ := n.Float64()
	return f
}

// Seq is a decoded payload's seq (1<<64-1 when it has none).
func Seq(p map[string]any) uint64 { return Uint(p["seq"]) }

// MustEnv is os.Getenv for helper processes, failing when unset.
func MustEnv(t testing.TB, k string) string {
	v := os.Getenv(k)
	if v == "" {
		t.Fatalf("%s is not set", k)
	}
	return v
}
