package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/config"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/mqtt/sparkplug/sptest"
	"go.uber.org/goleak"
)

// scadaConfig is the fixture's configuration with a triggered camera, the
// Sparkplug edge node, the PLC handshake and two recipes over bank
// versions 1 and 2 (the PLC may select them by number).
func (s *fixture) scadaConfig(t *testing.T, broker string, sets ...string) *config.Loaded {
	yml := filepath.Join(s.dir, "scada.yaml")
	os.WriteFile(yml, []byte(`
recipes:
  plc_select: true
  list:
    - {name: bottle-a, number: 1, bank: 1}
    - {name: bottle-b, number: 2, bank: 2}
`), 0o644)
	base := []string{"station.id=t1", "camera.source=dir:" + s.in, "camera.folder.settle=50ms", "camera.folder.poll=20ms", "camera.mode=triggered",
		"model.path=" + s.model, "bank.db=" + s.db, "mqtt.broker=" + broker, fmt.Sprintf("http.listen=127.0.0.1:%d", testenv.FreePort(t)),
		"bank.allow_unsigned=true", "maps.policy=always", "model.threads=2",
		"sparkplug.enabled=true", "sparkplug.group_id=plant", "sparkplug.edge_node_id=line1", "plc.enabled=true"}
	l, err := config.Load(yml, append(base, sets...))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// last returns the last payload on topic (nil when none).
func (r *recorder) last(topic string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := r.msgs[topic]
	if len(ps) == 0 {
		return nil
	}
	return ps[len(ps)-1]
}

func (r *recorder) count(topic string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs[topic])
}

// TestSCADASparkplugHandshakeRecipes runs a station with all three against
// a real mosquitto and reads Sparkplug with the Python decoder: births
// with every metric, a DDATA per part whose template and DataSet equal the
// JSON result (regions row by row), the PLC handshake (trigger -> busy ->
// result_ready with the seq, ok/ng; a trigger before the ack is refused
// with error 2; an ack of another seq sets error 6; the right ack clears
// result_ready), recipe switches by plc/recipe, by a Sparkplug write and by
// the recipe/select command, each result naming its recipe, each switch in
// the audit log, the anomaly map served at the URL the metric gives, seq
// without a gap over the session, and a clean stop (NDEATH with the
// NBIRTH's bdSeq, no goroutine left).
func TestSCADASparkplugHandshakeRecipes(t *testing.T) {
	f := newFixture(t)
	py := sptest.Decoder(t)
	mq := testenv.Mosquitto(t)
	rec := record(t, mq.URL())
	sp := sptest.Record(t, mq.URL(), "spBv1.0/#")
	// After the station stops (run's cleanup runs first, also when the
	// test fails half-way): nothing of it left.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	cfg := f.scadaConfig(t, mq.URL())
	stop := run(t, cfg)
	births := sp.Wait(t, "BIRTH", 2, 30*time.Second)
	dec := py.Decode(t, births[0].Payload, births[1].Payload)
	db := dec[1]
	alias := map[uint64]string{}
	for _, p := range dec {
		for _, m := range p["metrics"].([]any) {
			mm := m.(map[string]any)
			if a := sptest.Uint(mm["alias"]); a != 1<<64-1 {
				alias[a] = mm["name"].(string)
			}
		}
	}
	for _, name := range []string{spResult, spRegions, spMapURL, spParts, spPasses, spFails, spRecipe, spRecipeNo, spThreshold, spSigned,
		spLastCmd, spState, spCamera, spBank, spReady, spBusy, spResultReady, spResultSeq, spOK, spNG, spError, spHeartbeat, spTrigger, spAck} {
		if sptest.Metric(db, name) == nil {
			t.Errorf("DBIRTH has no %q", name)
		}
	}
	if v := sptest.Metric(db, spRecipe)["string_value"]; v != "bottle-a" {
		t.Errorf("DBIRTH recipe %v, want bottle-a (bank 1 is active)", v)
	}
	if sptest.Metric(dec[0], "_types_/"+spTemplate) == nil {
		t.Error("NBIRTH has no InspectionResult definition")
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return string(rec.last("linesight/t1/plc/ready")) == "1" }, "plc/ready 1")

	f.feed(t, 8, 0)
	plc := func(topic, payload string) {
		t.Helper()
		if err := rec.sub.Publish("linesight/t1/"+topic, 1, false, []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	want := func(topic, v string) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, func() bool { return string(rec.last("linesight/t1/"+topic)) == v }, topic+" = "+v)
	}
	// Part 1: trigger, a second trigger before the ack (error 2), an ack
	// of another seq (error 6), the right ack.
	plc("plc/trigger", "1")
	want("plc/result_ready", "1")
	want("plc/result_seq", "1")
	if string(rec.last("linesight/t1/plc/busy")) != "0" || string(rec.last("linesight/t1/plc/ready")) != "0" {
		t.Errorf("after the result: busy %s ready %s, want 0 0 (not acknowledged yet)", rec.last("linesight/t1/plc/busy"), rec.last("linesight/t1/plc/ready"))
	}
	if rec.count("linesight/t1/plc/busy") < 2 {
		t.Errorf("busy went %d times, want 1 then 0", rec.count("linesight/t1/plc/busy"))
	}
	plc("plc/trigger", "1")
	want("plc/error", strconv.Itoa(mqtt.PLCErrNotReady))
	plc("plc/ack", "7")
	want("plc/error", strconv.Itoa(mqtt.PLCErrAck))
	if string(rec.last("linesight/t1/plc/result_ready")) != "1" {
		t.Error("a wrong ack cleared result_ready")
	}
	plc("plc/ack", "1")
	want("plc/result_ready", "0")
	want("plc/ready", "1")
	want("plc/error", "0")

	// Parts 2..4 under recipe bottle-b (selected by number on plc/recipe),
	// parts 5..6 under bottle-a (the Sparkplug write Recipe/Number), parts
	// 7..8 under bottle-b (the recipe/select command).
	cycle := func(seq int) {
		t.Helper()
		plc("plc/trigger", "")
		want("plc/result_seq", strconv.Itoa(seq))
		want("plc/result_ready", "1")
		plc("plc/ack", strconv.Itoa(seq))
		want("plc/ready", "1")
	}
	plc("plc/recipe", "2")
	want("plc/recipe_active", "2")
	for seq := 2; seq <= 4; seq++ {
		cycle(seq)
	}
	var aliasOf = func(name string) uint64 {
		for a, n := range alias {
			if n == name {
				return a
			}
		}
		t.Fatalf("no alias for %s", name)
		return 0
	}
	sp.Publish(t, "spBv1.0/plant/DCMD/line1/t1", 0, false, py.Encode(t, map[string]any{"metrics": []any{
		map[string]any{"alias": aliasOf(spRecipeNo), "int_value": 1}}}))
	want("plc/recipe_active", "1")
	for seq := 5; seq <= 6; seq++ {
		cycle(seq)
	}
	// The command: its reply says how long the switch took.
	start := time.Now()
	plc("cmd/recipe/select", `{"id": "r1", "name": "bottle-b"}`)
	testenv.Eventually(t, 10*time.Second, func() bool { return rec.last("linesight/t1/cmd/recipe/select/reply") != nil }, "recipe/select reply")
	var reply struct {
		OK     bool
		Error  string
		Result mqtt.RecipeReply
	}
	json.Unmarshal(rec.last("linesight/t1/cmd/recipe/select/reply"), &reply)
	if !reply.OK || reply.Result.Recipe != "bottle-b" || !reply.Result.Changed {
		t.Fatalf("recipe/select: %+v", reply)
	}
	t.Logf("recipe switch: %.2f ms in the station, %v from the command to its reply", reply.Result.SwitchMs, time.Since(start).Round(time.Millisecond))
	for seq := 7; seq <= 8; seq++ {
		cycle(seq)
	}
	// The status names the recipe in use too.
	plc("cmd/status", `{"id": "st1"}`)
	testenv.Eventually(t, 10*time.Second, func() bool { return rec.last("linesight/t1/cmd/status/reply") != nil }, "status reply")
	var status struct{ Result mqtt.Status }
	json.Unmarshal(rec.last("linesight/t1/cmd/status/reply"), &status)
	if b := status.Result.Bank; b == nil || b.Recipe != "bottle-b" || b.RecipeNumber != 2 {
		t.Errorf("status after the switch to bottle-b: bank %+v", b)
	}

	// Every result names the recipe of the bank that scored it. (The
	// handshake gets a result before its JSON is published: wait for them.)
	testenv.Eventually(t, 30*time.Second, func() bool { return len(rec.results()) >= 8 }, "8 JSON results")
	rs := rec.results()
	if len(rs) != 8 {
		t.Fatalf("%d results, want 8", len(rs))
	}
	wantRecipe := []string{"bottle-a", "bottle-b", "bottle-b", "bottle-b", "bottle-a", "bottle-a", "bottle-b", "bottle-b"}
	for i, r := range rs {
		if r.Recipe != wantRecipe[i] || r.BankVersion != map[string]uint64{"bottle-a": 1, "bottle-b": 2}[r.Recipe] || r.RecipeNumber == 0 {
			t.Errorf("result %d: recipe %q (%d) bank %d, want %s", r.Seq, r.Recipe, r.RecipeNumber, r.BankVersion, wantRecipe[i])
		}
	}

	// A DDATA per part: the template and the DataSet equal the JSON result.
	var data []sptest.Msg
	testenv.Eventually(t, 10*time.Second, func() bool {
		data = nil
		data = append(data, sp.Messages("/DDATA/")...)
		return len(data) >= 8
	}, "DDATA")
	payloads := make([][]byte, len(data))
	for i, m := range data {
		payloads[i] = m.Payload
	}
	bySeq := map[uint64]map[string]any{}
	for _, p := range py.Decode(t, payloads...) {
		m := sptest.ByAlias(p, aliasOf(spResult))
		if m == nil {
			continue
		}
		tv := m["template_value"].(map[string]any)
		if tv["template_ref"] != spTemplate {
			t.Errorf("template_ref %v", tv["template_ref"])
		}
		members := map[string]map[string]any{}
		for _, mm := range tv["metrics"].([]any) {
			members[mm.(map[string]any)["name"].(string)] = mm.(map[string]any)
		}
		seq := sptest.Uint(members["Seq"]["long_value"])
		if bySeq[seq] != nil {
			t.Errorf("two DDATA for part %d", seq)
		}
		bySeq[seq] = map[string]any{"members": members, "regions": sptest.ByAlias(p, aliasOf(spRegions)), "map": sptest.ByAlias(p, aliasOf(spMapURL)),
			"ready": sptest.ByAlias(p, aliasOf(spResultReady))}
	}
	det := 0
	for _, r := range rs {
		d := bySeq[r.Seq]
		if d == nil {
			t.Errorf("no DDATA for part %d", r.Seq)
			continue
		}
		mem := d["members"].(map[string]map[string]any)
		if mem["Verdict"]["string_value"] != r.Verdict || sptest.Float(mem["Score"]["double_value"]) != r.Score ||
			sptest.Float(mem["Threshold"]["double_value"]) != r.Threshold || mem["Recipe"]["string_value"] != r.Recipe ||
			sptest.Uint(mem["Bank Version"]["long_value"]) != r.BankVersion || len(mem["Bank Hash"]["string_value"].(string)) != 64 {
			t.Errorf("part %d: template %v, JSON %+v", r.Seq, mem, r)
		}
		ds := d["regions"].(map[string]any)["dataset_value"].(map[string]any)
		rows, _ := ds["rows"].([]any)
		if cols := ds["columns"].([]any); !slices.Equal(cols, []any{"x", "y", "w", "h", "peak", "area"}) || len(rows) != len(r.Regions) {
			t.Errorf("part %d: DataSet %v with %d rows, JSON %d regions", r.Seq, cols, len(rows), len(r.Regions))
			continue
		}
		for i, row := range rows {
			el := row.(map[string]any)["elements"].([]any)
			v := func(k int) map[string]any { return el[k].(map[string]any) }
			g := r.Regions[i]
			got := mqtt.Region{X: int(int32(sptest.Uint(v(0)["int_value"]))), Y: int(int32(sptest.Uint(v(1)["int_value"]))), W: int(sptest.Uint(v(2)["int_value"])),
				H: int(sptest.Uint(v(3)["int_value"])), Peak: sptest.Float(v(4)["double_value"]), Area: int(sptest.Uint(v(5)["int_value"]))}
			if got != g {
				t.Errorf("part %d region %d: DataSet %+v, JSON %+v", r.Seq, i, got, g)
			}
			det++
		}
		if rr, _ := d["ready"].(map[string]any); rr == nil || rr["boolean_value"] != true {
			t.Errorf("part %d: its DDATA does not carry PLC/Result Ready true: %v", r.Seq, rr)
		}
		// The map's URL answers with the PNG the map topic carried.
		mu, _ := d["map"].(map[string]any)
		url, _ := mu["string_value"].(string)
		if r.Map == nil || url == "" {
			t.Errorf("part %d: map %v URL %q", r.Seq, r.Map, url)
			continue
		}
		var body []byte
		testenv.Eventually(t, 10*time.Second, func() bool {
			resp, err := http.Get(url)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			body, _ = io.ReadAll(resp.Body)
			return resp.StatusCode == 200
		}, "the map at "+url)
		if onTopic := rec.last(r.Map.Topic); string(onTopic) != string(body) {
			t.Errorf("part %d: the map at %s (%d bytes) is not the one on %s (%d bytes)", r.Seq, url, len(body), r.Map.Topic, len(onTopic))
		}
		// Someone who reaches http.listen but not the broker cannot walk
		// the part numbers: the URL's key is needed.
		i := strings.LastIndex(url, "/map/")
		for _, guess := range []string{url[:i] + "/map/" + strconv.FormatUint(r.Seq, 10), url[:i] + "/map/00000000000000000000000000000000/" + strconv.FormatUint(r.Seq, 10)} {
			resp, err := http.Get(guess)
			if err != nil {
				t.Errorf("part %d: %s: %v", r.Seq, guess, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("part %d: %s without the map key answered %s; want 404", r.Seq, guess, resp.Status)
			}
		}
	}
	t.Logf("%d parts, %d regions compared between DDATA DataSets and JSON results", len(rs), det)

	// Every message of the edge node's session in the order the broker
	// delivered it: seq 0 at NBIRTH, then +1 each (DBIRTH, DDATA of parts,
	// heartbeats, writes' echoes), with no gap.
	var out []sptest.Msg
	for _, m := range sp.Messages("") {
		if strings.Contains(m.Topic, "BIRTH") || strings.Contains(m.Topic, "DATA") {
			out = append(out, m)
		}
	}
	all := make([][]byte, len(out))
	for i, m := range out {
		all[i] = m.Payload
	}
	decoded := py.Decode(t, all...)
	for i, p := range decoded {
		got := sptest.Seq(p)
		switch {
		case strings.Contains(out[i].Topic, "NBIRTH"):
			if got != 0 {
				t.Errorf("NBIRTH with seq %d", got)
			}
		case i == 0:
			t.Fatalf("the first message is %s, not NBIRTH", out[i].Topic)
		default:
			if prev := sptest.Seq(decoded[i-1]); got != (prev+1)%256 {
				t.Errorf("message %d (%s): seq %d after %d", i, out[i].Topic, got, prev)
			}
		}
	}
	t.Logf("%d Sparkplug messages in one session, seq without a gap", len(out))

	// The 8 triggers taken (not the refused one) are in /metrics.
	if n := scrape(t, cfg.HTTP.Listen, "linesight_plc_trigger_to_result_seconds_count"); n != 8 {
		t.Errorf("linesight_plc_trigger_to_result_seconds_count = %v, want 8", n)
	}

	// A clean stop: the edge node's NDEATH (not the will) with the bdSeq
	// of its NBIRTH.
	stop()
	nd := py.Decode(t, sp.Wait(t, "NDEATH", 1, 10*time.Second)[0].Payload)[0]
	if b, d := sptest.Uint(sptest.Metric(dec[0], "bdSeq")["long_value"]), sptest.Uint(sptest.Metric(nd, "bdSeq")["long_value"]); b != d {
		t.Errorf("NDEATH bdSeq %d, NBIRTH's %d", d, b)
	}

	// The audit log has each switch, with who asked.
	st, err := bank.OpenStore(f.db, true)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := st.AuditLog(0)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	var who []string
	for _, e := range entries {
		if e.Action == "recipe" && e.Result == bank.AuditOK {
			who = append(who, e.Who)
		}
	}
	if !slices.Equal(who, []string{"plc:topic", "plc:sparkplug", "unsigned"}) {
		t.Errorf("recipe switches audited by %v, want plc:topic, plc:sparkplug, unsigned", who)
	}
	_ = strings.TrimSpace
}
