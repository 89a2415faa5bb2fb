package sparkplug

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
)

// Namespace is the first topic level of Sparkplug B (spec 4.1.1).
const Namespace = "spBv1.0"

// Message types (the third topic level, spec 4.1.1).
const (
	NBIRTH = "NBIRTH"
	NDEATH = "NDEATH"
	DBIRTH = "DBIRTH"
	DDEATH = "DDEATH"
	NDATA  = "NDATA"
	DDATA  = "DDATA"
	NCMD   = "NCMD"
	DCMD   = "DCMD"
	STATE  = "STATE"
)

// Node control metrics every NBIRTH carries (spec 6.4.18).
const (
	MetricBdSeq      = "bdSeq"
	MetricRebirth    = "Node Control/Rebirth"
	MetricNextServer = "Node Control/Next Server"
)

// Metric is one value as the edge node publishes it or a host writes it.
// Value's Go type follows Type:
//
//	Int8, Int16, Int32, Int64          int64
//	UInt8, UInt16, UInt32, UInt64      uint64
//	Float                              float32
//	Double                             float64
//	Boolean                            bool
//	String, Text, UUID                 string
//	DateTime                           time.Time
//	DataSet                            *Table
//	Template                           *Template
//
// A nil Value is sent as is_null.
type Metric struct {
	Name  string
	Type  DataType
	Value any
}

// Table is a Sparkplug DataSet: named, typed columns and rows of values
// (each value of its column's Go type, as for Metric).
type Table struct {
	Columns []string
	Types   []DataType
	Rows    [][]any
}

// Template is a Sparkplug Template: a definition (published once in
// NBIRTH, under the metric name "_types_/<Ref>") or an instance of one
// (Ref names the definition). Members are its metrics.
type Template struct {
	Ref        string
	Definition bool
	Version    string
	Members    []Metric
}

// TypesPrefix is the metric-name prefix of template definitions in NBIRTH
// (the convention Ignition's MQTT Engine and Eclipse Tahu follow: the
// definition "_types_/X" is the UDT that instances with template_ref "X"
// use).
const TypesPrefix = "_types_/"

// millis is t in Sparkplug's time unit: milliseconds since the Unix epoch,
// UTC (spec 6.4.x "timestamp").
func millis(t time.Time) uint64 { return uint64(t.UnixMilli()) }

// encodeMetric fills pm from m. Name and alias are the caller's (births
// carry both, data messages the alias only).
func encodeMetric(pm *Payload_Metric, m *Metric, withType bool) error {
	if withType {
		pm.Datatype = proto.Uint32(uint32(m.Type))
	}
	if m.Value == nil {
		pm.IsNull = proto.Bool(true)
		return nil
	}
	switch m.Type {
	case DataType_DataSet:
		t, ok := m.Value.(*Table)
		if !ok {
			return fmt.Errorf("sparkplug: metric %q: a DataSet takes a *Table, not %T", m.Name, m.Value)
		}
		ds, err := encodeTable(t)
		if err != nil {
			return fmt.Errorf("sparkplug: metric %q: %w", m.Name, err)
		}
		pm.Value = &Payload_Metric_DatasetValue{DatasetValue: ds}
		return nil
	case DataType_Template:
		t, ok := m.Value.(*Template)
		if !ok {
			return fmt.Errorf("sparkplug: metric %q: a Template takes a *Template, not %T", m.Name, m.Value)
		}
		pt := &Payload_Template{IsDefinition: proto.Bool(t.Definition)}
		if t.Version != "" {
			pt.Version = proto.String(t.Version)
		}
		if !t.Definition {
			pt.TemplateRef = proto.String(t.Ref)
		}
		pt.Metrics = make([]*Payload_Metric, len(t.Members))
		for i := range t.Members {
			mm := &t.Members[i]
			pt.Metrics[i] = &Payload_Metric{Name: proto.String(mm.Name)}
			// Members carry their datatype in every message: a template
			// instance is a value of its own, not an aliased metric.
			if err := encodeMetric(pt.Metrics[i], mm, true); err != nil {
				return fmt.Errorf("sparkplug: template %q: %w", m.Name, err)
			}
		}
		pm.Value = &Payload_Metric_TemplateValue{TemplateValue: pt}
		return nil
	}
	v, err := scalar(m.Type, m.Value)
	if err != nil {
		return fmt.Errorf("sparkplug: metric %q: %w", m.Name, err)
	}
	switch v := v.(type) {
	case uint32:
		pm.Value = &Payload_Metric_IntValue{IntValue: v}
	case uint64:
		pm.Value = &Payload_Metric_LongValue{LongValue: v}
	case float32:
		pm.Value = &Payload_Metric_FloatValue{FloatValue: v}
	case float64:
		pm.Value = &Payload_Metric_DoubleValue{DoubleValue: v}
	case bool:
		pm.Value = &Payload_Metric_BooleanValue{BooleanValue: v}
	case string:
		pm.Value = &Payload_Metric_StringValue{StringValue: v}
	}
	return nil
}

// scalar converts a Go value to the wire field its datatype uses (spec
// 6.4.16): Int8..Int32 and UInt8..UInt32 travel in the uint32 field
// (signed ones as their two's complement bits), Int64, UInt64 and
// DateTime in the uint64 one.
func scalar(t DataType, v any) (any, error) {
	bad := func() (any, error) { return nil, fmt.Errorf("%s takes another Go type than %T", t, v) }
	switch t {
	case DataType_Int8, DataType_Int16, DataType_Int32:
		x, ok := v.(int64)
		if !ok {
			return bad()
		}
		lo, hi := intRange(t)
		if x < lo || x > hi {
			return nil, fmt.Errorf("%d does not fit %s", x, t)
		}
		return uint32(int32(x)), nil
	case DataType_Int64:
		x, ok := v.(int64)
		if !ok {
			return bad()
		}
		return uint64(x), nil
	case DataType_UInt8, DataType_UInt16, DataType_UInt32:
		x, ok := v.(uint64)
		if !ok {
			return bad()
		}
		if x > uintMax(t) {
			return nil, fmt.Errorf("%d does not fit %s", x, t)
		}
		return uint32(x), nil
	case DataType_UInt64:
		x, ok := v.(uint64)
		if !ok {
			return bad()
		}
		return x, nil
	case DataType_DateTime:
		x, ok := v.(time.Time)
		if !ok {
			return bad()
		}
		return millis(x), nil
	case DataType_Float:
		x, ok := v.(float32)
		if !ok {
			return bad()
		}
		return x, nil
	case DataType_Double:
		x, ok := v.(float64)
		if !ok {
			return bad()
		}
		return x, nil
	case DataType_Boolean:
		x, ok := v.(bool)
		if !ok {
			return bad()
		}
		return x, nil
	case DataType_String, DataType_Text, DataType_UUID:
		x, ok := v.(string)
		if !ok {
			return bad()
		}
		return x, nil
	}
	return nil, fmt.Errorf("datatype %s is not one this edge node sends", t)
}

func intRange(t DataType) (int64, int64) {
	switch t {
	case DataType_Int8:
		return math.MinInt8, math.MaxInt8
	case DataType_Int16:
		return math.MinInt16, math.MaxInt16
	}
	return math.MinInt32, math.MaxInt32
}

func uintMax(t DataType) uint64 {
	switch t {
	case DataType_UInt8:
		return math.MaxUint8
	case DataType_UInt16:
		return math.MaxUint16
	}
	return math.MaxUint32
}

// encodeTable is a DataSet (spec 6.4.13): num_of_columns, the column
// names, their types, and each row's values in column order.
func encodeTable(t *Table) (*Payload_DataSet, error) {
	if len(t.Columns) != len(t.Types) {
		return nil, fmt.Errorf("DataSet with %d columns and %d types", len(t.Columns), len(t.Types))
	}
	ds := &Payload_DataSet{NumOfColumns: proto.Uint64(uint64(len(t.Columns))), Columns: t.Columns, Rows: make([]*Payload_DataSet_Row, len(t.Rows))}
	ds.Types = make([]uint32, len(t.Types))
	for i, ty := range t.Types {
		ds.Types[i] = uint32(ty)
	}
	for r, row := range t.Rows {
		if len(row) != len(t.Columns) {
			return nil, fmt.Errorf("DataSet row %d has %d values for %d columns", r, len(row), len(t.Columns))
		}
		pr := &Payload_DataSet_Row{Elements: make([]*Payload_DataSet_DataSetValue, len(row))}
		for c, v := range row {
			w, err := scalar(t.Types[c], v)
			if err != nil {
				return nil, fmt.Errorf("DataSet row %d column %q: %w", r, t.Columns[c], err)
			}
			e := &Payload_DataSet_DataSetValue{}
			switch w := w.(type) {
			case uint32:
				e.Value = &Payload_DataSet_DataSetValue_IntValue{IntValue: w}
			case uint64:
				e.Value = &Payload_DataSet_DataSetValue_LongValue{LongValue: w}
			case float32:
				e.Value = &Payload_DataSet_DataSetValue_FloatValue{FloatValue: w}
			case float64:
				e.Value = &Payload_DataSet_DataSetValue_DoubleValue{DoubleValue: w}
			case bool:
				e.Value = &Payload_DataSet_DataSetValue_BooleanValue{BooleanValue: w}
			case string:
				e.Value = &Payload_DataSet_DataSetValue_StringValue{StringValue: w}
			}
			pr.Elements[c] = e
		}
		ds.Rows[r] = pr
	}
	return ds, nil
}

// Limits on what a host's command may hold: a Linesight station takes a
// handful of scalar writes, never a bulk transfer.
const (
	MaxCommandBytes   = 64 << 10
	MaxCommandMetrics = 64
	MaxNameBytes      = 256
	MaxStringBytes    = 16 << 10
)

// Errors of command decoding, testable with errors.Is.
var (
	ErrCommand      = errors.New("sparkplug: malformed command")
	ErrUnknownAlias = errors.New("sparkplug: command names an alias this edge node did not give")
)

// Write is one metric a host writes with NCMD or DCMD, resolved to its
// name and decoded to the Go type of its datatype (see Metric).
type Write = Metric

// Lookup resolves a metric of this edge node by alias (name "") or by
// name: its name and datatype; ok false when it has none.
type Lookup func(alias uint64, name string) (string, DataType, bool)

// DecodeCommand decodes an NCMD or DCMD payload: each metric is named by
// alias or name (resolved through lookup, which also gives the datatype a
// host may leave out [tck-id-payloads-metric-datatype-not-req]) and holds
// a scalar value. DataSets, Templates, arrays, bytes and extensions are
// refused: no Linesight metric takes them as writes.
func DecodeCommand(payload []byte, lookup Lookup) ([]Write, error) {
	if len(payload) > MaxCommandBytes {
		return nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrCommand, len(payload), MaxCommandBytes)
	}
	var p Payload
	if err := proto.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCommand, err)
	}
	if len(p.Metrics) == 0 {
		return nil, fmt.Errorf("%w: no metrics", ErrCommand)
	}
	if len(p.Metrics) > MaxCommandMetrics {
		return nil, fmt.Errorf("%w: %d metrics (at most %d)", ErrCommand, len(p.Metrics), MaxCommandMetrics)
	}
	out := make([]Write, 0, len(p.Metrics))
	for i, pm := range p.Metrics {
		w, err := decodeWrite(pm, lookup)
		if err != nil {
			return nil, fmt.Errorf("metric %d: %w", i, err)
		}
		out = append(out, w)
	}
	return out, nil
}

func decodeWrite(pm *Payload_Metric, lookup Lookup) (Write, error) {
	name := pm.GetName()
	if len(name) > MaxNameBytes || !utf8.ValidString(name) {
		return Write{}, fmt.Errorf("%w: a metric name of %d bytes that is not short UTF-8", ErrCommand, len(name))
	}
	if pm.Name == nil && pm.Alias == nil {
		return Write{}, fmt.Errorf("%w: a metric with neither name nor alias", ErrCommand)
	}
	var alias uint64
	if pm.Name == nil {
		alias = pm.GetAlias()
	}
	known, typ, ok := lookup(alias, name)
	if !ok {
		if pm.Name == nil {
			return Write{}, fmt.Errorf("%w: %d", ErrUnknownAlias, alias)
		}
		return Write{}, fmt.Errorf("%w: no metric %q on this edge node", ErrCommand, name)
	}
	if pm.Datatype != nil && DataType(pm.GetDatatype()) != typ {
		return Write{}, fmt.Errorf("%w: %q is %s, the command says %s", ErrCommand, known, typ, DataType(pm.GetDatatype()))
	}
	w := Write{Name: known, Type: typ}
	if pm.GetIsNull() {
		return Write{}, fmt.Errorf("%w: %q: a null write", ErrCommand, known)
	}
	bad := func() (Write, error) {
		return Write{}, fmt.Errorf("%w: %q is %s; the value sent is %T", ErrCommand, known, typ, pm.GetValue())
	}
	switch v := pm.GetValue().(type) {
	case *Payload_Metric_IntValue:
		switch typ {
		case DataType_Int8, DataType_Int16, DataType_Int32:
			x := int64(int32(v.IntValue))
			if lo, hi := intRange(typ); x < lo || x > hi {
				return Write{}, fmt.Errorf("%w: %q: %d does not fit %s", ErrCommand, known, x, typ)
			}
			w.Value = x
		case DataType_UInt8, DataType_UInt16, DataType_UInt32:
			if uint64(v.IntValue) > uintMax(typ) {
				return Write{}, fmt.Errorf("%w: %q: %d does not fit %s", ErrCommand, known, v.IntValue, typ)
			}
			w.Value = uint64(v.IntValue)
		default:
			return bad()
		}
	case *Payload_Metric_LongValue:
		switch typ {
		case DataType_Int64:
			w.Value = int64(v.LongValue)
		case DataType_UInt64:
			w.Value = v.LongValue
		case DataType_DateTime:
			if v.LongValue > uint64(math.MaxInt64/int64(time.Millisecond)) {
				return Write{}, fmt.Errorf("%w: %q: a time beyond year 2262", ErrCommand, known)
			}
			w.Value = time.UnixMilli(int64(v.LongValue)).UTC()
		default:
			return bad()
		}
	case *Payload_Metric_FloatValue:
		if typ != DataType_Float {
			return bad()
		}
		w.Value = v.FloatValue
	case *Payload_Metric_DoubleValue:
		if typ != DataType_Double {
			return bad()
		}
		w.Value = v.DoubleValue
	case *Payload_Metric_BooleanValue:
		if typ != DataType_Boolean {
			return bad()
		}
		w.Value = v.BooleanValue
	case *Payload_Metric_StringValue:
		if typ != DataType_String && typ != DataType_Text && typ != DataType_UUID {
			return bad()
		}
		if len(v.StringValue) > MaxStringBytes || !utf8.ValidString(v.StringValue) {
			return Write{}, fmt.Errorf("%w: %q: a string of %d bytes that is not short UTF-8", ErrCommand, known, len(v.StringValue))
		}
		w.Value = v.StringValue
	case nil:
		return Write{}, fmt.Errorf("%w: %q: no value", ErrCommand, known)
	default:
		return Write{}, fmt.Errorf("%w: %q: only scalar writes are taken (got %T)", ErrCommand, known, v)
	}
	return w, nil
}

// State is the primary host application's STATE payload (Sparkplug 3.0,
// spec 6.4.x "STATE"): JSON, on spBv1.0/STATE/<host_id>, retained.
type State struct {
	Online    bool   `json:"online"`
	Timestamp uint64 `json:"timestamp"`
}

// ParseState decodes a STATE payload. Both fields are required: a
// Sparkplug 2.2 host's plain "ONLINE"/"OFFLINE" text is refused with a
// message saying so.
func ParseState(payload []byte) (State, error) {
	if len(payload) > 4096 {
		return State{}, fmt.Errorf("sparkplug: STATE of %d bytes", len(payload))
	}
	if s := strings.TrimSpace(string(payload)); s == "ONLINE" || s == "OFFLINE" {
		return State{}, fmt.Errorf("sparkplug: STATE %q is Sparkplug 2.2's form; this edge node speaks 3.0 (JSON {\"online\":..., \"timestamp\":...})", s)
	}
	var raw struct {
		Online    *bool   `json:"online"`
		Timestamp *uint64 `json:"timestamp"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return State{}, fmt.Errorf("sparkplug: STATE is not JSON: %v", err)
	}
	if raw.Online == nil || raw.Timestamp == nil {
		return State{}, errors.New(`sparkplug: STATE needs both "online" and "timestamp"`)
	}
	return State{Online: *raw.Online, Timestamp: *raw.Timestamp}, nil
}
