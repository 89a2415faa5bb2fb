package sparkplug_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/mqtt/sparkplug"
	"github.com/linesight/linesight/mqtt/sparkplug/sptest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// device is a small device: a counter, a DataSet, a template instance and
// a writable number, the shapes the station's metrics take.
type device struct {
	mu     sync.Mutex
	parts  uint64
	writes [][]sparkplug.Write
}

func (d *device) metrics() []sparkplug.Metric {
	d.mu.Lock()
	defer d.mu.Unlock()
	return []sparkplug.Metric{
		{Name: "Counters/Parts", Type: sparkplug.DataType_UInt64, Value: d.parts},
		{Name: "Inspection/Regions", Type: sparkplug.DataType_DataSet, Value: regions(int(d.parts))},
		{Name: "Inspection/Result", Type: sparkplug.DataType_Template, Value: &sparkplug.Template{Ref: "Result",
			Members: []sparkplug.Metric{{Name: "Verdict", Type: sparkplug.DataType_String, Value: "PASS"}, {Name: "Score", Type: sparkplug.DataType_Double, Value: 0.25}}}},
		{Name: "Recipe/Number", Type: sparkplug.DataType_Int32, Value: int64(-3)},
		{Name: "PLC/Trigger", Type: sparkplug.DataType_Boolean, Value: false},
	}
}

func regions(n int) *sparkplug.Table {
	t := &sparkplug.Table{Columns: []string{"x", "y", "peak"}, Types: []sparkplug.DataType{sparkplug.DataType_Int32, sparkplug.DataType_Int32, sparkplug.DataType_Double}}
	for i := range n % 3 {
		t.Rows = append(t.Rows, []any{int64(i * 10), int64(-i), 1.5 + float64(i)})
	}
	return t
}

var definitions = []sparkplug.Metric{{Name: "Result", Type: sparkplug.DataType_Template, Value: &sparkplug.Template{Definition: true, Version: "1",
	Members: []sparkplug.Metric{{Name: "Verdict", Type: sparkplug.DataType_String, Value: ""}, {Name: "Score", Type: sparkplug.DataType_Double, Value: 0.0}}}}}

func newNode(t *testing.T, d *device, servers []string, mod func(*sparkplug.Options)) *sparkplug.EdgeNode {
	t.Helper()
	o := sparkplug.Options{Servers: servers, ClientID: fmt.Sprintf("node-%d", time.Now().UnixNano()), Group: "plant", Node: "line1", Device: "cam1",
		Definitions: definitions, DeviceMetrics: d.metrics, Log: quiet,
		NodeMetrics: func() []sparkplug.Metric {
			return []sparkplug.Metric{{Name: "Properties/Version", Type: sparkplug.DataType_String, Value: "test"}}
		},
		OnWrite: func(_ string, ws []sparkplug.Write) { d.mu.Lock(); d.writes = append(d.writes, ws); d.mu.Unlock() }}
	if mod != nil {
		mod(&o)
	}
	n, err := sparkplug.New(o)
	if err != nil {
		t.Fatal(err)
	}
	n.Start()
	t.Cleanup(n.Close)
	return n
}

// decodeAll decodes every recorded message (NDEATH included).
func decodeAll(t *testing.T, py *sptest.Py, ms []sptest.Msg) []map[string]any {
	bs := make([][]byte, len(ms))
	for i, m := range ms {
		bs[i] = m.Payload
	}
	return py.Decode(t, bs...)
}

// TestWireBytesOfNDEATH: the bytes of an NDEATH worked out by hand from
// the specification's field numbers (Payload.timestamp = 1, metrics = 2;
// Metric.name = 1, datatype = 4, long_value = 11; Int64 = 4), so that a
// wrong number in our .proto fails here even though the Python decoder
// reads the same .proto.
func TestWireBytesOfNDEATH(t *testing.T) {
	got := sparkplug.DeathPayloadForTest(7, time.UnixMilli(1))
	want := []byte{
		0x08, 0x01, // field 1 (timestamp), varint 1
		0x12, 0x0b, // field 2 (metrics), 11 bytes:
		0x0a, 0x05, 'b', 'd', 'S', 'e', 'q', // field 1 (name) "bdSeq"
		0x20, 0x04, // field 4 (datatype) Int64
		0x58, 0x07, // field 11 (long_value) 7
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("NDEATH bytes\n got % x\nwant % x", got, want)
	}
}

// TestEdgeNodeSession: against a real mosquitto, read by the Python
// decoder: NBIRTH and DBIRTH, DDATA by alias with seq continuing across
// node and device messages and wrapping after 255, a DataSet and a
// template, a write by alias and by name, a rebirth on NCMD (same bdSeq,
// seq 0 again), a clean stop's NDEATH, and Next Server to a second broker.
func TestEdgeNodeSession(t *testing.T) {
	py := sptest.Decoder(t)
	mq, mq2 := testenv.Mosquitto(t), testenv.Mosquitto(t)
	rec := sptest.Record(t, mq.URL(), "spBv1.0/#")
	rec2 := sptest.Record(t, mq2.URL(), "spBv1.0/#")
	d := &device{}
	n := newNode(t, d, []string{mq.URL(), mq2.URL()}, nil)

	births := rec.Wait(t, "BIRTH", 2, 20*time.Second)
	if births[0].Topic != "spBv1.0/plant/NBIRTH/line1" || births[1].Topic != "spBv1.0/plant/DBIRTH/line1/cam1" {
		t.Fatalf("births on %s, %s", births[0].Topic, births[1].Topic)
	}
	for _, m := range births {
		if m.QoS != 0 || m.Retained {
			t.Errorf("%s: QoS %d retained %v, want QoS 0 not retained", m.Topic, m.QoS, m.Retained)
		}
	}
	dec := decodeAll(t, py, births)
	nb, db := dec[0], dec[1]
	if sptest.Seq(nb) != 0 || sptest.Seq(db) != 1 {
		t.Errorf("NBIRTH seq %d, DBIRTH seq %d; want 0, 1", sptest.Seq(nb), sptest.Seq(db))
	}
	bd := sptest.Metric(nb, "bdSeq")
	if bd == nil || sptest.Uint(bd["datatype"]) != 4 || sptest.Uint(bd["long_value"]) != 0 {
		t.Errorf("NBIRTH bdSeq metric %v, want Int64 0", bd)
	}
	for _, name := range []string{"Node Control/Rebirth", "Node Control/Next Server"} {
		m := sptest.Metric(nb, name)
		if m == nil || sptest.Uint(m["datatype"]) != 11 || m["boolean_value"] != false {
			t.Errorf("NBIRTH %q: %v, want a Boolean false", name, m)
		}
	}
	def := sptest.Metric(nb, "_types_/Result")
	if tv, _ := def["template_value"].(map[string]any); tv == nil || tv["is_definition"] != true {
		t.Errorf("template definition in NBIRTH: %v", def)
	}
	aliases := map[uint64]string{}
	for _, p := range []map[string]any{nb, db} {
		for _, m := range p["metrics"].([]any) {
			mm := m.(map[string]any)
			name := mm["name"].(string)
			if name == "bdSeq" || name == "_types_/Result" {
				continue
			}
			a := sptest.Uint(mm["alias"])
			if prev, dup := aliases[a]; dup {
				t.Errorf("alias %d given to %q and %q", a, prev, name)
			}
			aliases[a] = name
			if mm["timestamp"] == nil || mm["datatype"] == nil {
				t.Errorf("birth metric %q without timestamp or datatype", name)
			}
		}
	}
	alias := map[string]uint64{}
	for a, name := range aliases {
		alias[name] = a
	}
	inst := sptest.Metric(db, "Inspection/Result")["template_value"].(map[string]any)
	if inst["template_ref"] != "Result" || inst["is_definition"] != false {
		t.Errorf("template instance %v", inst)
	}
	if v := sptest.Metric(db, "Recipe/Number"); sptest.Uint(v["int_value"]) != uint64(uint32(0xfffffffd)) {
		t.Errorf("Int32 -3 travels as %v, want its two's complement in int_value", v["int_value"])
	}

	// 300 DDATA: seq 2, 3, ... 255, 0, 1, ... with no gap.
	const parts = 300
	for i := 1; i <= parts; i++ {
		d.mu.Lock()
		d.parts = uint64(i)
		d.mu.Unlock()
		ms := d.metrics()
		if !n.Data(ms[:3]) {
			t.Fatalf("DDATA %d not sent", i)
		}
	}
	data := rec.Wait(t, "DDATA", parts, 20*time.Second)
	ddec := decodeAll(t, py, data)
	wrapped := false
	for i, p := range ddec {
		want := uint64(i+2) % 256
		if got := sptest.Seq(p); got != want {
			t.Fatalf("DDATA %d has seq %d, want %d", i, got, want)
		}
		if sptest.Seq(p) == 0 {
			wrapped = true
		}
		c := sptest.ByAlias(p, alias["Counters/Parts"])
		if c == nil || c["name"] != nil || c["datatype"] != nil || sptest.Uint(c["long_value"]) != uint64(i+1) {
			t.Fatalf("DDATA %d: Counters/Parts by alias %d = %v, want only alias and value %d", i, alias["Counters/Parts"], c, i+1)
		}
		ds := sptest.ByAlias(p, alias["Inspection/Regions"])["dataset_value"].(map[string]any)
		rows, _ := ds["rows"].([]any)
		if sptest.Uint(ds["num_of_columns"]) != 3 || len(rows) != (i+1)%3 {
			t.Fatalf("DDATA %d: DataSet %v, want 3 columns and %d rows", i, ds, (i+1)%3)
		}
		for r, row := range rows {
			el := row.(map[string]any)["elements"].([]any)
			y := int32(uint32(sptest.Uint(el[1].(map[string]any)["int_value"])))
			peak := sptest.Float(el[2].(map[string]any)["double_value"])
			if y != int32(-r) || peak != 1.5+float64(r) {
				t.Fatalf("DDATA %d row %d: y %d peak %v", i, r, y, peak)
			}
		}
	}
	if !wrapped {
		t.Error("seq never wrapped to 0")
	}

	// Writes: DCMD by alias (no name, no datatype, as Ignition sends with
	// aliases) and by name.
	rec.Publish(t, "spBv1.0/plant/DCMD/line1/cam1", 0, false, py.Encode(t, map[string]any{"timestamp": 5, "metrics": []any{
		map[string]any{"alias": alias["Recipe/Number"], "int_value": 7},
		map[string]any{"name": "PLC/Trigger", "datatype": 11, "boolean_value": true}}}))
	testenv.Eventually(t, 10*time.Second, func() bool { d.mu.Lock(); defer d.mu.Unlock(); return len(d.writes) == 1 }, "the DCMD write")
	d.mu.Lock()
	w := d.writes[0]
	d.mu.Unlock()
	if len(w) != 2 || w[0].Name != "Recipe/Number" || w[0].Value != int64(7) || w[1].Name != "PLC/Trigger" || w[1].Value != true {
		t.Errorf("writes %+v", w)
	}

	// Rebirth: NBIRTH with the same bdSeq and seq 0, then DBIRTH seq 1.
	rec.Publish(t, "spBv1.0/plant/NCMD/line1", 0, false, py.Encode(t, map[string]any{"timestamp": 6, "metrics": []any{
		map[string]any{"name": "Node Control/Rebirth", "datatype": 11, "boolean_value": true}}}))
	again := rec.Wait(t, "BIRTH", 4, 10*time.Second)[2:]
	adec := decodeAll(t, py, again)
	if again[0].Topic != births[0].Topic || sptest.Seq(adec[0]) != 0 || sptest.Seq(adec[1]) != 1 ||
		sptest.Uint(sptest.Metric(adec[0], "bdSeq")["long_value"]) != 0 {
		t.Errorf("rebirth: %s seq %d bdSeq %v, DBIRTH seq %d", again[0].Topic, sptest.Seq(adec[0]), sptest.Metric(adec[0], "bdSeq"), sptest.Seq(adec[1]))
	}
	if c := sptest.Metric(adec[1], "Counters/Parts"); sptest.Uint(c["long_value"]) != parts || sptest.Uint(c["alias"]) != alias["Counters/Parts"] {
		t.Errorf("rebirth DBIRTH carries %v, want the current value %d under the same alias", c, parts)
	}
	if !n.Data(d.metrics()[:1]) {
		t.Fatal("DDATA after rebirth not sent")
	}
	if p := decodeAll(t, py, rec.Wait(t, "DDATA", parts+1, 10*time.Second)[parts:]); sptest.Seq(p[0]) != 2 {
		t.Errorf("first DDATA after the rebirth has seq %d, want 2", sptest.Seq(p[0]))
	}

	// A command that does not decode changes nothing and the node serves on.
	rec.Publish(t, "spBv1.0/plant/DCMD/line1/cam1", 0, false, []byte{0xff, 0x01})

	// Next Server: NDEATH (bdSeq 0) on the first broker, a new session
	// (bdSeq 1) on the second.
	rec.Publish(t, "spBv1.0/plant/NCMD/line1", 0, false, py.Encode(t, map[string]any{"metrics": []any{
		map[string]any{"alias": alias["Node Control/Next Server"], "boolean_value": true}}}))
	death := rec.Wait(t, "NDEATH", 1, 10*time.Second)[0]
	if p := decodeAll(t, py, []sptest.Msg{death})[0]; sptest.Uint(sptest.Metric(p, "bdSeq")["long_value"]) != 0 || p["seq"] != nil {
		t.Errorf("NDEATH on Next Server: %v, want bdSeq 0 and no seq", p)
	}
	nb2 := decodeAll(t, py, rec2.Wait(t, "NBIRTH", 1, 20*time.Second)[:1])[0]
	if sptest.Uint(sptest.Metric(nb2, "bdSeq")["long_value"]) != 1 || sptest.Seq(nb2) != 0 {
		t.Errorf("NBIRTH on the next server: bdSeq %v seq %d, want 1 and 0", sptest.Metric(nb2, "bdSeq"), sptest.Seq(nb2))
	}
	d.mu.Lock()
	nw := len(d.writes)
	d.mu.Unlock()
	if nw != 1 {
		t.Errorf("%d writes delivered, want 1 (the malformed DCMD must not be one)", nw)
	}

	// Close: NDEATH with the session's bdSeq, then DISCONNECT.
	rec2.Wait(t, "DBIRTH", 1, 10*time.Second)
	n.Close()
	nd := rec2.Wait(t, "NDEATH", 1, 10*time.Second)[0]
	if p := decodeAll(t, py, []sptest.Msg{nd})[0]; sptest.Uint(sptest.Metric(p, "bdSeq")["long_value"]) != 1 || nd.QoS != 1 || nd.Retained {
		t.Errorf("NDEATH on close: %v QoS %d retained %v", p, nd.QoS, nd.Retained)
	}
}

// TestPrimaryHostState: with a primary host, births wait for its STATE to
// say online; an offline STATE ends the session (NDEATH) and the births
// come again, with the next bdSeq, when it is online again; a STATE older
// than the last one is ignored.
func TestPrimaryHostState(t *testing.T) {
	py := sptest.Decoder(t)
	mq := testenv.Mosquitto(t)
	rec := sptest.Record(t, mq.URL(), "spBv1.0/#")
	d := &device{}
	n := newNode(t, d, []string{mq.URL()}, func(o *sparkplug.Options) { o.PrimaryHost = "scada" })
	state := func(online bool, ts uint64) []byte {
		b, _ := json.Marshal(sparkplug.State{Online: online, Timestamp: ts})
		return b
	}
	// Connected and subscribed, but no births without the host: a DDATA
	// now is not sent.
	testenv.Eventually(t, 10*time.Second, func() bool { return !n.Data(d.metrics()[:1]) }, "a node without births")
	time.Sleep(500 * time.Millisecond)
	if ms := rec.Messages("BIRTH"); len(ms) != 0 {
		t.Fatalf("births before the primary host is online: %d", len(ms))
	}
	rec.Publish(t, sparkplug.StateTopic("scada"), 1, true, state(true, 1000))
	b1 := decodeAll(t, py, rec.Wait(t, "BIRTH", 2, 10*time.Second))
	if sptest.Uint(sptest.Metric(b1[0], "bdSeq")["long_value"]) != 0 {
		t.Errorf("first NBIRTH bdSeq %v", sptest.Metric(b1[0], "bdSeq"))
	}
	// An older STATE saying offline is stale: nothing happens.
	rec.Publish(t, sparkplug.StateTopic("scada"), 1, true, state(false, 999))
	testenv.Eventually(t, 10*time.Second, func() bool { return n.Data(d.metrics()[:1]) }, "DDATA after a stale STATE")
	if len(rec.Messages("NDEATH")) != 0 {
		t.Fatal("a stale offline STATE ended the session")
	}
	// Offline: NDEATH with bdSeq 0.
	rec.Publish(t, sparkplug.StateTopic("scada"), 1, true, state(false, 2000))
	death := decodeAll(t, py, rec.Wait(t, "NDEATH", 1, 10*time.Second))[0]
	if sptest.Uint(sptest.Metric(death, "bdSeq")["long_value"]) != 0 {
		t.Errorf("NDEATH bdSeq %v, want 0", sptest.Metric(death, "bdSeq"))
	}
	// Online again: births with bdSeq 1.
	rec.Publish(t, sparkplug.StateTopic("scada"), 1, true, state(true, 3000))
	b2 := decodeAll(t, py, rec.Wait(t, "BIRTH", 4, 20*time.Second)[2:])
	if sptest.Uint(sptest.Metric(b2[0], "bdSeq")["long_value"]) != 1 || sptest.Seq(b2[0]) != 0 || sptest.Seq(b2[1]) != 1 {
		t.Errorf("births after the host came back: bdSeq %v seq %d/%d, want 1, 0/1", sptest.Metric(b2[0], "bdSeq"), sptest.Seq(b2[0]), sptest.Seq(b2[1]))
	}
	rec.Publish(t, sparkplug.StateTopic("scada"), 1, true, nil) // clear the retained STATE
}

// TestDeathWillAfterKill: a process holding an edge node is killed with
// SIGKILL; the broker publishes its NDEATH will (QoS 1, not retained)
// with the bdSeq of its NBIRTH. The bdSeq file makes the next process
// start at the following bdSeq.
func TestDeathWillAfterKill(t *testing.T) {
	py := sptest.Decoder(t)
	mq := testenv.Mosquitto(t)
	rec := sptest.Record(t, mq.URL(), "spBv1.0/#")
	bdFile := filepath.Join(t.TempDir(), "bdseq")
	os.WriteFile(bdFile, []byte("254\n"), 0o644)
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperEdgeNode$")
		cmd.Env = append(os.Environ(), "SPARKPLUG_HELPER_BROKER="+mq.URL(), "SPARKPLUG_HELPER_BDSEQ="+bdFile)
		if err := cmd.Start(); errors.Is(err, syscall.ENOEXEC) {
			// A cross-built test binary under qemu user emulation
			// (make test-qemu) cannot start itself without binfmt.
			t.Skipf("the test binary cannot start itself here: %v", err)
		} else if err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	for i, want := range []uint64{254, 255} {
		cmd := start()
		nb := decodeAll(t, py, rec.Wait(t, "NBIRTH", i+1, 30*time.Second)[i:i+1])[0]
		if got := sptest.Uint(sptest.Metric(nb, "bdSeq")["long_value"]); got != want {
			t.Errorf("process %d: NBIRTH bdSeq %d, want %d", i, got, want)
		}
		cmd.Process.Kill()
		cmd.Wait()
		nd := rec.Wait(t, "NDEATH", i+1, 30*time.Second)[i]
		p := decodeAll(t, py, []sptest.Msg{nd})[0]
		if got := sptest.Uint(sptest.Metric(p, "bdSeq")["long_value"]); got != want || nd.QoS != 1 || nd.Retained || nd.Topic != "spBv1.0/plant/NDEATH/line1" {
			t.Errorf("process %d: will on %s bdSeq %d QoS %d retained %v; want bdSeq %d, QoS 1, not retained", i, nd.Topic, got, nd.QoS, nd.Retained, want)
		}
	}
	if b, _ := os.ReadFile(bdFile); string(b) != "0\n" {
		t.Errorf("bdSeq file holds %q after 255, want 0 (wrapped)", b)
	}
}

// TestHelperEdgeNode is the process TestDeathWillAfterKill kills.
func TestHelperEdgeNode(t *testing.T) {
	broker := os.Getenv("SPARKPLUG_HELPER_BROKER")
	if broker == "" {
		t.Skip("helper process for TestDeathWillAfterKill")
	}
	d := &device{}
	newNode(t, d, []string{broker}, func(o *sparkplug.Options) { o.BdSeqFile = sptest.MustEnv(t, "SPARKPLUG_HELPER_BDSEQ") })
	select {}
}

func TestParseState(t *testing.T) {
	for in, want := range map[string]string{
		`{"online":true,"timestamp":5}`:  "",
		`{"online":false}`:               "both",
		`ONLINE`:                         "2.2",
		`{"online":"yes","timestamp":1}`: "JSON",
	} {
		_, err := sparkplug.ParseState([]byte(in))
		if (err == nil) != (want == "") || (err != nil && !bytes.Contains([]byte(err.Error()), []byte(want))) {
			t.Errorf("ParseState(%s) = %v, want an error containing %q", in, err, want)
		}
	}
}

func TestDecodeCommandRefusals(t *testing.T) {
	py := sptest.Decoder(t)
	lookup := func(alias uint64, name string) (string, sparkplug.DataType, bool) {
		if alias == 3 || name == "Threshold" {
			return "Threshold", sparkplug.DataType_Double, true
		}
		if alias == 4 || name == "Small" {
			return "Small", sparkplug.DataType_Int8, true
		}
		return "", 0, false
	}
	for _, c := range []struct {
		name string
		p    map[string]any
		want error
	}{
		{"unknown alias", map[string]any{"metrics": []any{map[string]any{"alias": 9, "double_value": 1}}}, sparkplug.ErrUnknownAlias},
		{"wrong type", map[string]any{"metrics": []any{map[string]any{"alias": 3, "boolean_value": true}}}, sparkplug.ErrCommand},
		{"datatype disagrees", map[string]any{"metrics": []any{map[string]any{"name": "Threshold", "datatype": 9, "double_value": 1}}}, sparkplug.ErrCommand},
		{"out of range", map[string]any{"metrics": []any{map[string]any{"alias": 4, "int_value": 300}}}, sparkplug.ErrCommand},
		{"no value", map[string]any{"metrics": []any{map[string]any{"alias": 3}}}, sparkplug.ErrCommand},
		{"dataset write", map[string]any{"metrics": []any{map[string]any{"alias": 3, "dataset_value": map[string]any{"num_of_columns": 1}}}}, sparkplug.ErrCommand},
		{"no metrics", map[string]any{"timestamp": 1}, sparkplug.ErrCommand},
	} {
		_, err := sparkplug.DecodeCommand(py.Encode(t, c.p), lookup)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	ws, err := sparkplug.DecodeCommand(py.Encode(t, map[string]any{"metrics": []any{map[string]any{"alias": 4, "int_value": uint64(4294967295)}}}), lookup)
	if err != nil || ws[0].Value != int64(-1) {
		t.Errorf("Int8 -1 as two's complement: %v %v", ws, err)
	}
}

// FuzzDecodeCommand: any payload a host (or anyone on the broker) sends
// as NCMD/DCMD decodes or is refused, never panics; what decodes names a
// known metric with a value of its datatype's Go type.
func FuzzDecodeCommand(f *testing.F) {
	seeds := [][]byte{
		{0x12, 0x06, 0x10, 0x03, 0x69, 0, 0, 0, 0, 0, 0, 0}, // alias 3, double
		{0x12, 0x04, 0x10, 0x04, 0x50, 0x7f},                // alias 4, int 127
		{0x12, 0x08, 0x0a, 0x02, 'x', 'y', 0x70, 0x01, 0x20, 0x0b},
		{0x12, 0x02, 0x8a, 0x01}, // a dataset field, truncated
		{0xff, 0xff, 0xff},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	lookup := func(alias uint64, name string) (string, sparkplug.DataType, bool) {
		switch {
		case alias == 3 || name == "d":
			return "d", sparkplug.DataType_Double, true
		case alias == 4 || name == "i":
			return "i", sparkplug.DataType_Int8, true
		case alias == 5 || name == "s":
			return "s", sparkplug.DataType_String, true
		case alias == 6 || name == "xy":
			return "xy", sparkplug.DataType_Boolean, true
		}
		return "", 0, false
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ws, err := sparkplug.DecodeCommand(b, lookup)
		if err != nil {
			return
		}
		for _, w := range ws {
			ok := false
			switch w.Type {
			case sparkplug.DataType_Double:
				_, ok = w.Value.(float64)
			case sparkplug.DataType_Int8:
				v, isInt := w.Value.(int64)
				ok = isInt && v >= -128 && v <= 127
			case sparkplug.DataType_String:
				_, ok = w.Value.(string)
			case sparkplug.DataType_Boolean:
				_, ok = w.Value.(bool)
			}
			if !ok {
				t.Fatalf("%q (%s) decoded to %T %v", w.Name, w.Type, w.Value, w.Value)
			}
		}
	})
}

// FuzzParseState: a STATE payload parses or is refused, never panics.
func FuzzParseState(f *testing.F) {
	for _, s := range []string{`{"online":true,"timestamp":1}`, `ONLINE`, `{"online":false,"timestamp":18446744073709551615}`, `{`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { sparkplug.ParseState(b) })
}
