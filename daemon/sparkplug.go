package daemon

import (
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/mqtt/sparkplug"
)

// Sparkplug metric names of the station (the device sparkplug.device_id of
// the edge node sparkplug.edge_node_id). The README lists them.
const (
	spResult    = "Inspection/Result"  // Template InspectionResult
	spRegions   = "Inspection/Regions" // DataSet x, y, w, h, peak, area
	spMapURL    = "Inspection/Map URL" // the part's anomaly map over HTTP, "" when none
	spParts     = "Counters/Parts"
	spPasses    = "Counters/Passes"
	spFails     = "Counters/Fails"
	spDropped   = "Counters/SCADA Dropped" // results not handed to SCADA (queue full)
	spRecipe    = "Recipe/Name"            // writable: select by name (signed/authorized)
	spRecipeNo  = "Recipe/Number"          // writable: select by number
	spThreshold = "Control/Threshold"      // writable: the operator's threshold (0 = the bank's)
	spSigned    = "Control/Signed Command" // writable: a signed command as JSON {"name": ..., "signed": {...}}
	spLastCmd   = "Control/Last Command"   // what the last write did
	spState     = "Health/State"
	spCamera    = "Health/Camera Connected"
	spBank      = "Health/Bank Version"

	spReady       = "PLC/Ready"
	spBusy        = "PLC/Busy"
	spResultReady = "PLC/Result Ready"
	spResultSeq   = "PLC/Result Seq"
	spOK          = "PLC/OK"
	spNG          = "PLC/NG"
	spError       = "PLC/Error"
	spHeartbeat   = "PLC/Heartbeat"
	spTrigger     = "PLC/Trigger" // writable: true takes a part
	spAck         = "PLC/Ack"     // writable: the result seq read

	spTemplate = "InspectionResult"
)

// resultMembers are the InspectionResult template's members, in order.
var resultMembers = []struct {
	name string
	typ  sparkplug.DataType
	zero any
}{
	{"Verdict", sparkplug.DataType_String, ""},
	{"Score", sparkplug.DataType_Double, 0.0},
	{"Normalized", sparkplug.DataType_Double, 0.0},
	{"Threshold", sparkplug.DataType_Double, 0.0},
	{"Seq", sparkplug.DataType_UInt64, uint64(0)},
	{"Time", sparkplug.DataType_DateTime, time.UnixMilli(0).UTC()},
	{"Bank Version", sparkplug.DataType_UInt64, uint64(0)},
	{"Bank Hash", sparkplug.DataType_String, ""},
	{"Recipe", sparkplug.DataType_String, ""},
	{"Recipe Number", sparkplug.DataType_Int32, int64(0)},
	{"Latency ms", sparkplug.DataType_Double, 0.0},
	{"Regions", sparkplug.DataType_Int32, int64(0)},
}

// spark is the station's Sparkplug edge node: births from the station's
// state, a DDATA per inspected part (from the scada goroutine), host writes
// authorized as MQTT commands are.
type spark struct {
	s    *station
	node *sparkplug.EdgeNode

	mu      sync.Mutex
	last    *scadaEvent // the last result, for births
	parts   uint64
	passes  uint64
	fails   uint64
	plcSent plcState
	plcAny  bool
	lastCmd string
	mapBase string
	// mapKey is a random path element of every map URL: the URLs go to
	// whoever reads the broker's Sparkplug topics (who sees the results
	// anyway), while someone who merely reaches http.listen cannot walk
	// the part numbers and read the line's pictures.
	mapKey   string
	mapsRing mapRing
}

// newSpark prepares the edge node (started by Run's start list).
func newSpark(s *station, broker, password string, tlsCfg *tls.Config) (*spark, error) {
	c := &s.cfg.Sparkplug
	key := make([]byte, 16)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("sparkplug: the map URLs' key: %w", err)
	}
	sp := &spark{s: s, mapBase: c.MapURL, mapKey: hex.EncodeToString(key)}
	if sp.mapBase == "" && s.cfg.HTTP.Listen != "" {
		sp.mapBase = "http://" + s.cfg.HTTP.Listen
		if s.cfg.HTTP.TLS.Cert != "" {
			sp.mapBase = "https://" + s.cfg.HTTP.Listen
		}
	}
	servers := c.Servers
	if len(servers) == 0 {
		servers = []string{broker}
	}
	id := c.ClientID
	if id == "" {
		var r [4]byte
		rand.Read(r[:])
		id = "linesight-sp-" + s.cfg.Station.ID + "-" + hex.EncodeToString(r[:])
	}
	def := &sparkplug.Template{Definition: true, Version: "1"}
	for _, m := range resultMembers {
		def.Members = append(def.Members, sparkplug.Metric{Name: m.name, Type: m.typ, Value: m.zero})
	}
	node, err := sparkplug.New(sparkplug.Options{Servers: servers, ClientID: id, Username: s.cfg.MQTT.Username, Password: password, TLS: tlsCfg,
		Group: c.GroupID, Node: s.cfg.EdgeNode(), Device: s.cfg.Device(), PrimaryHost: c.PrimaryHostID,
		BdSeqFile:   filepath.Join(filepath.Dir(s.cfg.Bank.DB), "sparkplug.bdseq"),
		NodeMetrics: sp.nodeMetrics, DeviceMetrics: sp.deviceMetrics, OnWrite: sp.onWrite, Rejected: sp.rejected, Log: s.log,
		Definitions: []sparkplug.Metric{{Name: spTemplate, Type: sparkplug.DataType_Template, Value: def}}})
	if err != nil {
		return nil, err
	}
	sp.node = node
	return sp, nil
}

func (sp *spark) nodeMetrics() []sparkplug.Metric {
	s := sp.s
	return []sparkplug.Metric{
		{Name: "Properties/Software", Type: sparkplug.DataType_String, Value: "Linesight " + Version},
		{Name: "Properties/Station", Type: sparkplug.DataType_String, Value: s.cfg.Station.ID},
		{Name: "Properties/Model SHA256", Type: sparkplug.DataType_String, Value: s.model.SHA256},
	}
}

// deviceMetrics is every device metric with its value now (DBIRTH).
func (sp *spark) deviceMetrics() []sparkplug.Metric {
	sp.mu.Lock()
	last := sp.last
	parts, passes, fails, lastCmd := sp.parts, sp.passes, sp.fails, sp.lastCmd
	sp.mu.Unlock()
	var ms []sparkplug.Metric
	if last != nil {
		ms = sp.resultMetrics(last)
	} else {
		ms = sp.resultMetrics(&scadaEvent{res: mqtt.Result{Regions: []mqtt.Region{}}})
	}
	ms = append(ms,
		sparkplug.Metric{Name: spParts, Type: sparkplug.DataType_UInt64, Value: parts},
		sparkplug.Metric{Name: spPasses, Type: sparkplug.DataType_UInt64, Value: passes},
		sparkplug.Metric{Name: spFails, Type: sparkplug.DataType_UInt64, Value: fails},
		sparkplug.Metric{Name: spDropped, Type: sparkplug.DataType_UInt64, Value: sp.s.scada.drops.Load()},
		sparkplug.Metric{Name: spSigned, Type: sparkplug.DataType_String, Value: ""},
		sparkplug.Metric{Name: spLastCmd, Type: sparkplug.DataType_String, Value: lastCmd},
		sparkplug.Metric{Name: spTrigger, Type: sparkplug.DataType_Boolean, Value: false},
	)
	ms = append(ms, sp.recipeMetrics()...)
	ms = append(ms, sp.healthMetrics()...)
	if h := sp.s.scada.plc; h != nil {
		st := h.state()
		ms = append(ms, plcMetrics(&plcState{}, &st, true)...)
		ms = append(ms, sparkplug.Metric{Name: spAck, Type: sparkplug.DataType_UInt64, Value: uint64(0)})
	}
	return ms
}

// resultMetrics are a result's metrics: the template, the regions, the
// map's URL.
func (sp *spark) resultMetrics(e *scadaEvent) []sparkplug.Metric {
	r := &e.res
	t, err := time.Parse(time.RFC3339Nano, r.Time)
	if err != nil {
		t = time.UnixMilli(0).UTC()
	}
	vals := []any{r.Verdict, r.Score, r.Normalized, r.Threshold, r.Seq, t, r.BankVersion, e.bankHash, r.Recipe,
		int64(r.RecipeNumber), r.Latency.Total, int64(len(r.Regions))}
	inst := &sparkplug.Template{Ref: spTemplate, Members: make([]sparkplug.Metric, len(resultMembers))}
	for i, m := range resultMembers {
		inst.Members[i] = sparkplug.Metric{Name: m.name, Type: m.typ, Value: vals[i]}
	}
	tab := &sparkplug.Table{Columns: []string{"x", "y", "w", "h", "peak", "area"},
		Types: []sparkplug.DataType{sparkplug.DataType_Int32, sparkplug.DataType_Int32, sparkplug.DataType_Int32, sparkplug.DataType_Int32,
			sparkplug.DataType_Double, sparkplug.DataType_Int32}, Rows: make([][]any, len(r.Regions))}
	for i, g := range r.Regions {
		tab.Rows[i] = []any{int64(g.X), int64(g.Y), int64(g.W), int64(g.H), g.Peak, int64(g.Area)}
	}
	url := ""
	if r.Map != nil && sp.mapBase != "" {
		url = sp.mapBase + "/map/" + sp.mapKey + "/" + strconv.FormatUint(r.Seq, 10)
	}
	return []sparkplug.Metric{
		{Name: spResult, Type: sparkplug.DataType_Template, Value: inst},
		{Name: spRegions, Type: sparkplug.DataType_DataSet, Value: tab},
		{Name: spMapURL, Type: sparkplug.DataType_String, Value: url},
	}
}

func (sp *spark) recipeMetrics() []sparkplug.Metric {
	name, number := "", 0
	if rc := sp.s.recipes.active(); rc != nil {
		name, number = rc.Name, rc.Number
	}
	th := 0.0
	if det := sp.s.banks.pending(); det != nil {
		th, _ = det.Threshold()
	}
	return []sparkplug.Metric{
		{Name: spRecipe, Type: sparkplug.DataType_String, Value: name},
		{Name: spRecipeNo, Type: sparkplug.DataType_Int32, Value: int64(number)},
		{Name: spThreshold, Type: sparkplug.DataType_Double, Value: th},
	}
}

func (sp *spark) healthMetrics() []sparkplug.Metric {
	s := sp.s
	return []sparkplug.Metric{
		{Name: spState, Type: sparkplug.DataType_String, Value: s.state()},
		{Name: spCamera, Type: sparkplug.DataType_Boolean, Value: s.cam.Health().Connected},
		{Name: spBank, Type: sparkplug.DataType_UInt64, Value: s.banks.version()},
	}
}

// plcMetrics are the handshake's metrics that differ between old and st
// (all of them with all).
func plcMetrics(old, st *plcState, all bool) []sparkplug.Metric {
	var ms []sparkplug.Metric
	add := func(same bool, name string, t sparkplug.DataType, v any) {
		if all || !same {
			ms = append(ms, sparkplug.Metric{Name: name, Type: t, Value: v})
		}
	}
	add(old.ResultSeq == st.ResultSeq, spResultSeq, sparkplug.DataType_UInt64, st.ResultSeq)
	add(old.OK == st.OK, spOK, sparkplug.DataType_Boolean, st.OK)
	add(old.NG == st.NG, spNG, sparkplug.DataType_Boolean, st.NG)
	add(old.Error == st.Error, spError, sparkplug.DataType_Int32, int64(st.Error))
	add(old.Busy == st.Busy, spBusy, sparkplug.DataType_Boolean, st.Busy)
	add(old.ResultReady == st.ResultReady && old.ResultSeq == st.ResultSeq, spResultReady, sparkplug.DataType_Boolean, st.ResultReady)
	add(old.Ready == st.Ready, spReady, sparkplug.DataType_Boolean, st.Ready)
	add(old.Heartbeat == st.Heartbeat, spHeartbeat, sparkplug.DataType_UInt64, st.Heartbeat)
	return ms
}

// onResult publishes one DDATA for a part: its result, the counters and
// the handshake's change, together (a host reads them as one update).
func (sp *spark) onResult(e *scadaEvent, h *handshake) {
	sp.mu.Lock()
	sp.parts++
	if e.res.Verdict == mqtt.Fail {
		sp.fails++
	} else {
		sp.passes++
	}
	cp := *e
	sp.last = &cp
	ms := append(sp.resultMetrics(e),
		sparkplug.Metric{Name: spParts, Type: sparkplug.DataType_UInt64, Value: sp.parts},
		sparkplug.Metric{Name: spPasses, Type: sparkplug.DataType_UInt64, Value: sp.passes},
		sparkplug.Metric{Name: spFails, Type: sparkplug.DataType_UInt64, Value: sp.fails},
		sparkplug.Metric{Name: spDropped, Type: sparkplug.DataType_UInt64, Value: sp.s.scada.drops.Load()})
	if h != nil {
		st := h.state()
		ms = append(ms, plcMetrics(&sp.plcSent, &st, !sp.plcAny)...)
		sp.plcSent, sp.plcAny = st, true
	}
	sp.mu.Unlock()
	sp.node.Data(ms)
}

// plcChanged publishes the handshake metrics that changed since the last
// DDATA (all with force).
func (sp *spark) plcChanged(st *plcState, force bool) {
	sp.mu.Lock()
	ms := plcMetrics(&sp.plcSent, st, force || !sp.plcAny)
	sp.plcSent, sp.plcAny = *st, true
	sp.mu.Unlock()
	if len(ms) > 0 {
		sp.node.Data(ms)
	}
}

func (sp *spark) recipeChanged() { sp.node.Data(append(sp.recipeMetrics(), sp.healthMetrics()...)) }

// onWrite takes a host's DCMD writes. Anything that changes pass/fail
// (threshold, recipe) goes through the station's command path: signed by
// a trusted key (Control/Signed Command) or unsigned only where the station
// allows unsigned changes (bank.allow_unsigned), audited either way; a
// recipe number is taken unsigned only with recipes.plc_select.
func (sp *spark) onWrite(device string, ws []sparkplug.Write) {
	for _, w := range ws {
		msg := "ok"
		if err := sp.write(device, w); err != nil {
			msg = "refused: " + err.Error()
			sp.s.log.Warn("Sparkplug write refused", "metric", w.Name, "err", err)
		}
		sp.mu.Lock()
		sp.lastCmd = w.Name + ": " + msg
		last := sp.lastCmd
		sp.mu.Unlock()
		sp.node.Data([]sparkplug.Metric{{Name: spLastCmd, Type: sparkplug.DataType_String, Value: last}})
	}
}

func (sp *spark) write(device string, w sparkplug.Write) error {
	s := sp.s
	if device == "" {
		return fmt.Errorf("%q is not writable", w.Name)
	}
	cmd := func(name string, fields map[string]any) error {
		raw, _ := json.Marshal(fields)
		_, err := s.command(name, mqtt.Request{ID: "sparkplug", Raw: raw, Name: name})
		return err
	}
	switch w.Name {
	case spTrigger:
		if w.Value == true {
			s.scada.send(scadaEvent{kind: evTrigger, via: "sparkplug"})
			// A momentary write: the tag goes back to false.
			sp.node.Data([]sparkplug.Metric{{Name: spTrigger, Type: sparkplug.DataType_Boolean, Value: false}})
		}
		return nil
	case spAck:
		s.scada.send(scadaEvent{kind: evAck, seq: w.Value.(uint64), via: "sparkplug"})
		return nil
	case spRecipeNo:
		n := int(w.Value.(int64))
		if s.cfg.Recipes.PLCSelect {
			return s.selectByPLC(n, "sparkplug")
		}
		return cmd(mqtt.CmdRecipeSelect, map[string]any{"number": n})
	case spRecipe:
		return cmd(mqtt.CmdRecipeSelect, map[string]any{"name": w.Value.(string)})
	case spThreshold:
		v := w.Value.(float64)
		var err error
		if v == 0 {
			err = cmd(mqtt.CmdThreshold, map[string]any{"reset": true})
		} else {
			err = cmd(mqtt.CmdThreshold, map[string]any{"set": v})
		}
		sp.node.Data(sp.recipeMetrics()) // the threshold in force, changed or not
		return err
	case spSigned:
		var env struct {
			Name   string          `json:"name"`
			Signed json.RawMessage `json:"signed"`
		}
		if err := json.Unmarshal([]byte(w.Value.(string)), &env); err != nil || env.Name == "" || len(env.Signed) == 0 {
			return errors.New(`want {"name": "<command>", "signed": {...}} as made by linesight cmd --sign`)
		}
		raw, _ := json.Marshal(map[string]json.RawMessage{"signed": env.Signed})
		_, err := s.command(env.Name, mqtt.Request{ID: "sparkplug", Raw: raw, Name: env.Name})
		sp.node.Data(append([]sparkplug.Metric{{Name: spSigned, Type: sparkplug.DataType_String, Value: ""}}, sp.recipeMetrics()...))
		return err
	}
	return fmt.Errorf("%q is not writable", w.Name)
}

// rejected audits a command that did not decode (someone on the broker
// sent the edge node something it does not take).
func (sp *spark) rejected(topic string, err error) {
	sp.s.audit(bank.AuditEntry{Action: "command", Who: "sparkplug", Result: bank.AuditRefused, Reason: err.Error(), Detail: topic})
}

// health is published every few seconds when it changed.
func (sp *spark) health(prev *[3]any) {
	ms := sp.healthMetrics()
	cur := [3]any{ms[0].Value, ms[1].Value, ms[2].Value}
	if cur != *prev {
		*prev = cur
		sp.node.Data(ms)
	}
}

// mapRing keeps the last anomaly maps as PNG for GET /map/{key}/{seq}: Ignition
// takes no binary tags, so a part's map travels as a URL
// ("Inspection/Map URL"). The map is encoded off the inspection path: its
// URL may answer 404 for the few milliseconds until it is.
type mapRing struct {
	mu   sync.Mutex
	seq  [mapRingSize]uint64
	png  [mapRingSize][]byte
	next int
}

const mapRingSize = 32

func (m *mapRing) add(seq uint64, png []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq[m.next], m.png[m.next] = seq, png
	m.next = (m.next + 1) % mapRingSize
}

func (m *mapRing) get(seq uint64) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.seq {
		if m.seq[i] == seq && m.png[i] != nil {
			return m.png[i]
		}
	}
	return nil
}

// keepMap keeps an encoded map for its URL (the map encoder calls it).
func (s *station) keepMap(seq uint64, png []byte) {
	if s.scada != nil && s.scada.spark != nil {
		s.scada.spark.mapsRing.add(seq, png)
	}
}

// serveMap is GET /map/{key}/{seq}: one of the last anomaly maps. A
// wrong key gets the same 404 as a map that is not there.
func (s *station) serveMap(w http.ResponseWriter, r *http.Request) {
	if s.scada == nil || s.scada.spark == nil {
		http.Error(w, "anomaly maps by URL are served with sparkplug.enabled", http.StatusNotFound)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PathValue("key")), []byte(s.scada.spark.mapKey)) != 1 {
		http.Error(w, "no such map", http.StatusNotFound)
		return
	}
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		http.Error(w, "want /map/<seq>", http.StatusBadRequest)
		return
	}
	png := s.scada.spark.mapsRing.get(seq)
	if png == nil {
		http.Error(w, fmt.Sprintf("no map of part %d here (the last %d maps are kept)", seq, mapRingSize), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "max-age=3600, immutable")
	w.Write(png)
}
