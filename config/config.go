// Package config is Linesight's configuration: one YAML file (default
// /etc/linesight/linesight.yaml), defaults for everything that has a
// sensible one, `key.path=value` overrides from the command line, and a
// Validate that reports every problem with its field path and line.
// Unknown keys are errors: a typo must not silently fall back to a default.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/linesight/linesight/camera"
)

// DefaultPath is where the daemon looks without --config.
const DefaultPath = "/etc/linesight/linesight.yaml"

// Config is the whole configuration.
type Config struct {
	Station  Station  `yaml:"station"`
	Camera   Camera   `yaml:"camera"`
	Model    Model    `yaml:"model"`
	Bank     Bank     `yaml:"bank"`
	Scoring  Scoring  `yaml:"scoring"`
	Maps     Maps     `yaml:"maps"`
	Queue    Queue    `yaml:"queue"`
	Evidence Evidence `yaml:"evidence"`
	MQTT     MQTT     `yaml:"mqtt"`
	HTTP     HTTP     `yaml:"http"`
	Log      Log      `yaml:"log"`
	// SCADA and PLC integration (issue 20): the Sparkplug B edge node, the
	// PLC handshake topics and the product recipes.
	Sparkplug Sparkplug `yaml:"sparkplug"`
	PLC       PLC       `yaml:"plc"`
	Recipes   Recipes   `yaml:"recipes"`
}

// Station identifies the inspection station.
type Station struct {
	ID string `yaml:"id"`
}

// Camera is the frame source (see package camera for the source syntax).
type Camera struct {
	Source  string  `yaml:"source"`
	Mode    string  `yaml:"mode"` // continuous | triggered
	MaxFPS  float64 `yaml:"max_fps"`
	Width   int     `yaml:"width"`
	Height  int     `yaml:"height"`
	FPS     float64 `yaml:"fps"`
	Format  string  `yaml:"format"` // MJPG | YUYV | ""
	Buffers int     `yaml:"buffers"`
	ROI     string  `yaml:"roi"` // x,y,w,h
	// MaxPixels refuses image files larger than this before decoding.
	MaxPixels int      `yaml:"max_pixels"`
	Folder    Folder   `yaml:"folder"`
	Backoff   Duration `yaml:"backoff_max"`
	// ReadTimeout: a live source that sends no frame for this long is
	// stalled; streams and commands (exec:, pipe:) are then restarted.
	ReadTimeout Duration `yaml:"read_timeout"`
	Exec        Exec     `yaml:"exec"`
}

// Exec configures exec: and pipe: sources: what the stream carries.
type Exec struct {
	Format string `yaml:"format"` // jpeg | rgb24 | bgr24 | gray8
	Width  int    `yaml:"width"`  // raw formats: frame size (required)
	Height int    `yaml:"height"`
	// Scale decodes JPEG frames at this fraction of their size (in the
	// DCT domain, a fraction of the cost): 1 | 1/2 | 1/4 | 1/8.
	Scale string `yaml:"scale"`
}

// Folder configures dir: sources.
type Folder struct {
	Settle Duration `yaml:"settle"`
	Poll   Duration `yaml:"poll"`
	Done   string   `yaml:"done"` // keep | delete | move:DIR
}

// Model is the backbone.
type Model struct {
	Path    string `yaml:"path"`
	Threads int    `yaml:"threads"` // 0: all cores
}

// Bank is the memory bank database and who may change it remotely.
type Bank struct {
	DB string `yaml:"db"`
	// TrustedKeys is a file of public keys (one per line, `linesight keys
	// generate`): pushed bundles and state-changing commands must be
	// signed by one of them.
	TrustedKeys string `yaml:"trusted_keys"`
	// AllowUnsigned lets a station without trusted keys take unsigned
	// pushes and commands: for a lab bench, never a line.
	AllowUnsigned bool `yaml:"allow_unsigned"`
	// Models is where pushed backbones are kept, by fingerprint ("" =
	// a "models" folder beside the database).
	Models string `yaml:"models"`
}

// Scoring adjusts how the bank's scores become verdicts. Everything else
// about scoring travels inside the bank, so that it scores as it was built.
type Scoring struct {
	// Threshold overrides the bank's calibrated threshold (0 = use the
	// bank's). The MQTT threshold command changes it at run time.
	Threshold float64 `yaml:"threshold"`
}

// Maps says when and how anomaly maps are published.
type Maps struct {
	Policy   string `yaml:"policy"` // always | fail | never
	Format   string `yaml:"format"` // heatmap | raw
	MaxWidth int    `yaml:"max_width"`
	Dir      string `yaml:"dir"` // also write PNGs here ("" = no)
}

// Queue is the bounded queue between camera and inference.
type Queue struct {
	Size int    `yaml:"size"`
	Drop string `yaml:"drop"` // oldest | newest
}

// MQTT is the broker connection.
type MQTT struct {
	Broker       string `yaml:"broker"` // embedded | tcp://host:1883 | ssl://host:8883
	Embedded     string `yaml:"embedded_listen"`
	ClientID     string `yaml:"client_id"`
	Prefix       string `yaml:"prefix"`
	QoS          int    `yaml:"qos"`
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	TLS          TLS    `yaml:"tls"`
	Outbox       Outbox `yaml:"outbox"`
}

// TLS files for ssl:// brokers.
type TLS struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Outbox bounds what is kept while the broker is away.
type Outbox struct {
	Path       string `yaml:"path"` // "" = beside the bank database
	MaxResults int    `yaml:"max_results"`
	MaxMaps    int    `yaml:"max_maps"`
}

// Evidence is the ring of the last inspected frames kept on disk with
// their results, addressable by seq (cmd/bank/append takes parts from it).
type Evidence struct {
	Dir    string `yaml:"dir"`    // "" = an "evidence" folder beside the bank database
	Frames int    `yaml:"frames"` // frames kept, 0 = no evidence ring
	MaxMB  int    `yaml:"max_mb"` // bytes kept, in MiB
}

// Sparkplug is the Sparkplug B 3.0 edge node: results, handshake and recipe
// as metrics for a SCADA host (Ignition's MQTT Engine), on its own MQTT
// connection to the same broker as the JSON topics (mqtt.*) unless
// Servers says otherwise.
type Sparkplug struct {
	Enabled bool `yaml:"enabled"`
	// Servers are MQTT server URLs the edge node walks ("Next Server");
	// empty = mqtt.broker (the embedded broker's address when embedded).
	// Credentials and TLS are mqtt.*'s.
	Servers  []string `yaml:"servers"`
	ClientID string   `yaml:"client_id"` // "" = linesight-sp-<station id>-<random hex>
	GroupID  string   `yaml:"group_id"`
	// EdgeNodeID and DeviceID default to the station id.
	EdgeNodeID string `yaml:"edge_node_id"`
	DeviceID   string `yaml:"device_id"`
	// PrimaryHostID is the primary host application's host_id (Ignition:
	// MQTT Engine's "Primary Host ID"): births wait for its STATE online.
	// "" = births on connect.
	PrimaryHostID string `yaml:"primary_host_id"`
	// MapURL is the base of the anomaly map URLs the metrics carry, as the
	// SCADA host reaches this station's http.listen ("" = http://<http.listen>).
	MapURL string `yaml:"map_url"`
}

// EdgeNode is sparkplug.edge_node_id, defaulting to the station id.
func (c *Config) EdgeNode() string {
	if c.Sparkplug.EdgeNodeID != "" {
		return c.Sparkplug.EdgeNodeID
	}
	return c.Station.ID
}

// Device is sparkplug.device_id, defaulting to the station id.
func (c *Config) Device() string {
	if c.Sparkplug.DeviceID != "" {
		return c.Sparkplug.DeviceID
	}
	return c.Station.ID
}

// PLC is the handshake a PLC drives over MQTT (retained scalar topics under
// <prefix>/<station>/plc/, and the same as Sparkplug metrics).
type PLC struct {
	Enabled bool `yaml:"enabled"`
	// Heartbeat is how often the heartbeat counter goes up.
	Heartbeat Duration `yaml:"heartbeat"`
	// ResultTimeout: a trigger without a result this long sets error 5.
	ResultTimeout Duration `yaml:"result_timeout"`
	// AckRequired: after a result, ready stays 0 until the PLC
	// acknowledges it (plc/ack = its seq), so that no result is
	// overwritten unread.
	AckRequired bool `yaml:"ack_required"`
}

// Recipes are the product variants: each a bank version under a name and
// a number. Their banks are kept loaded, so a switch takes no load.
type Recipes struct {
	List []Recipe `yaml:"list"`
	// Default is the recipe put in use at start when the active bank is
	// none of the recipes' and follows from none of them (a recipe's bank
	// follows the bank put in use while it is selected: daemon/recipes.go)
	// ("" = the first).
	Default string `yaml:"default"`
	// PLCSelect lets the PLC select a recipe by number without a
	// signature, on plc/recipe and the Sparkplug "Recipe/Number" write:
	// the plant's choice (a recipe changes pass/fail); every switch is
	// audited. Off, selection takes the signed recipe/select command.
	PLCSelect bool `yaml:"plc_select"`
}

// Recipe is one product variant.
type Recipe struct {
	Name   string `yaml:"name"`
	Number int    `yaml:"number"` // 1..32767 (a PLC INT)
	Bank   uint64 `yaml:"bank"`   // bank version in bank.db
}

// HTTP is the health and metrics endpoint and the station console.
type HTTP struct {
	Listen string `yaml:"listen"` // "" disables it
	// Console serves the station console at / on Listen. Bound to
	// loopback without ConsoleUsersFile it needs no login; bound beyond
	// loopback it is served only with ConsoleUsersFile.
	Console bool `yaml:"console"`
	// ConsoleUsersFile lists who may log in: "name role sha256-of-token"
	// a line, role operator (may act) or viewer (may look).
	ConsoleUsersFile string `yaml:"console_users_file"`
	// ConsoleShifts are the local hours at which shifts start, for the
	// console's per-shift counts.
	ConsoleShifts []int `yaml:"console_shifts"`
	// TLS serves Listen over HTTPS with this certificate (chain) and key,
	// PEM files: beyond loopback, the console's logins and session
	// cookies then never cross the network in clear. Files replaced on
	// disk (a renewed certificate) are taken at the next connection.
	TLS HTTPTLS `yaml:"tls"`
}

// HTTPTLS is the certificate and key http.listen serves HTTPS with.
type HTTPTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Log configures structured logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Duration is a time.Duration written as "200ms", "5s".
type Duration time.Duration

// UnmarshalYAML parses Go duration syntax.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 200ms or 5s", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes Go duration syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Defaults returns the configuration used where the file is silent. The
// camera's and its queue's come from package camera.
func Defaults() Config {
	cam := camera.DefaultConfig()
	return Config{
		Station: Station{ID: "station-1"},
		Camera: Camera{Mode: cam.Mode.String(), Folder: Folder{Settle: Duration(cam.Settle), Poll: Duration(cam.Poll), Done: cam.Done},
			Backoff: Duration(cam.BackoffMax), ReadTimeout: Duration(cam.ReadTimeout), MaxPixels: cam.MaxPixels,
			Exec: Exec{Format: cam.ExecFormat, Scale: "1"}},
		Model:    Model{Path: "/var/lib/linesight/backbone.tflite"},
		Bank:     Bank{DB: "/var/lib/linesight/banks.db"},
		Maps:     Maps{Policy: "fail", Format: "heatmap", MaxWidth: 640},
		Queue:    Queue{Size: 4, Drop: cam.Drop},
		Evidence: Evidence{Frames: 200, MaxMB: 512},
		MQTT: MQTT{Broker: "embedded", Embedded: "127.0.0.1:1883", Prefix: "linesight", QoS: 1,
			Outbox: Outbox{MaxResults: 100000, MaxMaps: 200}},
		HTTP: HTTP{Listen: "127.0.0.1:9090", Console: true, ConsoleShifts: []int{6, 14, 22}},
		Log:  Log{Level: "info", Format: "text"},

		Sparkplug: Sparkplug{GroupID: "linesight"},
		PLC:       PLC{Heartbeat: Duration(time.Second), ResultTimeout: Duration(5 * time.Second), AckRequired: true},
	}
}

// Loaded is a configuration with where each field came from.
type Loaded struct {
	Config
	File  string         // "" when only defaults and overrides
	lines map[string]int // field path -> line in File
}

// Line returns the line of a field path in the file (0 if not from it).
func (l *Loaded) Line(path string) int { return l.lines[path] }

// Load reads path ("" = defaults only) and applies overrides of the form
// key.path=value, in order.
func Load(path string, overrides []string) (*Loaded, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return Parse(path, data, overrides)
}

// Parse is Load from bytes; name is used in messages.
func Parse(name string, data []byte, overrides []string) (*Loaded, error) {
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("config: %s is %d bytes; a config is a few kB", name, len(data))
	}
	var root yaml.Node
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&root); err != nil {
			return nil, fmt.Errorf("config: %s: %v", name, err)
		}
		if err := dec.Decode(new(yaml.Node)); err != io.EOF {
			return nil, fmt.Errorf("config: %s: more than one YAML document", name)
		}
	}
	doc := &root
	if doc.Kind == 0 {
		doc = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	} else {
		if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
			return nil, fmt.Errorf("config: %s: not a YAML document", name)
		}
		doc = doc.Content[0]
		if doc.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("config: %s: line %d: the top level must be a mapping of sections", name, doc.Line)
		}
	}
	lines := map[string]int{}
	collectLines(doc, "", lines)
	for _, o := range overrides {
		if err := override(doc, o); err != nil {
			return nil, err
		}
	}
	cfg := Defaults()
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("config: %s: %v", name, err)
	}
	reencoded := buf.Bytes()
	dec := yaml.NewDecoder(bytes.NewReader(reencoded))
	dec.KnownFields(true) // unknown keys are errors
	if err := dec.Decode(&cfg); err != nil && err != io.EOF {
		return nil, fmt.Errorf("config: %s: %v", name, relabel(err, reencoded, lines))
	}
	return &Loaded{Config: cfg, File: name, lines: lines}, nil
}

var lineRef = regexp.MustCompile(`line (\d+): `)

// relabel rewrites yaml.v3's decoding errors, whose line numbers refer to
// the re-encoded document (overrides applied, comments gone), to name the
// field and its line in the file.
func relabel(err error, reencoded []byte, fileLines map[string]int) error {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var n yaml.Node
	byLine := map[int]string{}
	if yaml.Unmarshal(reencoded, &n) == nil && len(n.Content) == 1 {
		paths := map[string]int{}
		collectLines(n.Content[0], "", paths)
		for p, l := range paths {
			byLine[l] = p
		}
	}
	for i, m := range msgs {
		msgs[i] = lineRef.ReplaceAllStringFunc(m, func(s string) string {
			l, _ := strconv.Atoi(lineRef.FindStringSubmatch(s)[1])
			p, ok := byLine[l]
			if !ok {
				return s
			}
			if fl := fileLines[p]; fl > 0 {
				return fmt.Sprintf("%s (line %d): ", p, fl)
			}
			return p + " (from --set): "
		})
	}
	return errors.New(strings.Join(msgs, "; "))
}

func collectLines(n *yaml.Node, prefix string, lines map[string]int) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		path := k.Value
		if prefix != "" {
			path = prefix + "." + k.Value
		}
		lines[path] = k.Line
		collectLines(v, path, lines)
	}
}

// override sets key.path=value in a mapping node, creating sections.
func override(doc *yaml.Node, kv string) error {
	key, val, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return fmt.Errorf("config: --set %q: want key.path=value", kv)
	}
	parts := strings.Split(key, ".")
	n := doc
	for i, p := range parts {
		var child *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == p {
				child = n.Content[j+1]
			}
		}
		last := i == len(parts)-1
		if child == nil {
			child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			if last {
				child = &yaml.Node{Kind: yaml.ScalarNode}
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: p}, child)
		}
		if last {
			if child.Kind != yaml.ScalarNode {
				return fmt.Errorf("config: --set %s: %s is a section, not a value", kv, key)
			}
			*child = yaml.Node{Kind: yaml.ScalarNode, Value: val}
			return nil
		}
		if child.Kind != yaml.MappingNode {
			return fmt.Errorf("config: --set %s: %s is a value, not a section", kv, strings.Join(parts[:i+1], "."))
		}
		n = child
	}
	return nil
}

// FieldError is one validation problem.
type FieldError struct {
	Path string
	Line int // 0 when the value is a default or an override
	Msg  string
}

func (e FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s (line %d): %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

// Errors is every problem Validate found.
type Errors []FieldError

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return "config: " + strings.Join(s, "\n  ")
}

// Validate checks every field and reports all problems at once.
func (l *Loaded) Validate() error {
	var es Errors
	bad := func(path, format string, a ...any) {
		es = append(es, FieldError{Path: path, Line: l.lines[path], Msg: fmt.Sprintf(format, a...)})
	}
	c := &l.Config
	if strings.TrimSpace(c.Station.ID) == "" || strings.ContainsAny(c.Station.ID, "/#+ ") {
		bad("station.id", "%q: must be non-empty without spaces, '/', '#' or '+' (it is an MQTT topic level)", c.Station.ID)
	}
	oneOf := func(path, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad(path, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
	if _, err := c.CameraConfig(); err != nil {
		var ce camera.Errors
		if !errors.As(err, &ce) {
			ce = camera.Errors{{Field: "", Msg: err.Error()}}
		}
		for _, e := range ce {
			path, ok := cameraPaths[e.Field]
			if !ok {
				path = "camera"
			}
			bad(path, "%s", e.Msg)
		}
	}
	if c.Model.Path == "" {
		bad("model.path", "no model file")
	}
	if c.Model.Threads < 0 {
		bad("model.threads", "%d is negative", c.Model.Threads)
	}
	if c.Bank.DB == "" {
		bad("bank.db", "no bank database")
	}
	if f := c.Bank.TrustedKeys; f != "" {
		if _, err := os.Stat(f); err != nil {
			bad("bank.trusted_keys", "%v", err)
		}
	}
	if c.Scoring.Threshold < 0 {
		bad("scoring.threshold", "%v is negative (0 = the bank's threshold)", c.Scoring.Threshold)
	}
	oneOf("maps.policy", c.Maps.Policy, "always", "fail", "never")
	oneOf("maps.format", c.Maps.Format, "heatmap", "raw")
	if c.Maps.MaxWidth < 16 || c.Maps.MaxWidth > 8192 {
		bad("maps.max_width", "%d outside 16..8192", c.Maps.MaxWidth)
	}
	if c.Queue.Size < 1 {
		bad("queue.size", "%d is below 1", c.Queue.Size)
	}
	b := c.MQTT.Broker
	if b != "embedded" && !strings.HasPrefix(b, "tcp://") && !strings.HasPrefix(b, "ssl://") && !strings.HasPrefix(b, "ws://") && !strings.HasPrefix(b, "wss://") {
		bad("mqtt.broker", "%q is not embedded or a tcp://, ssl://, ws:// or wss:// URL", b)
	}
	if c.MQTT.Prefix == "" || strings.ContainsAny(c.MQTT.Prefix, "#+") || strings.HasPrefix(c.MQTT.Prefix, "/") || strings.HasSuffix(c.MQTT.Prefix, "/") {
		bad("mqtt.prefix", "%q: must be non-empty, without wildcards or leading/trailing '/'", c.MQTT.Prefix)
	}
	if c.MQTT.QoS < 0 || c.MQTT.QoS > 2 {
		bad("mqtt.qos", "%d is not 0, 1 or 2", c.MQTT.QoS)
	}
	if (c.MQTT.TLS.Cert == "") != (c.MQTT.TLS.Key == "") {
		bad("mqtt.tls.cert", "a client certificate needs both cert and key")
	}
	for path, f := range map[string]string{"mqtt.tls.ca": c.MQTT.TLS.CA, "mqtt.tls.cert": c.MQTT.TLS.Cert, "mqtt.tls.key": c.MQTT.TLS.Key, "mqtt.password_file": c.MQTT.PasswordFile} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				bad(path, "%v", err)
			}
		}
	}
	if c.MQTT.Outbox.MaxResults < 0 || c.MQTT.Outbox.MaxMaps < 0 {
		bad("mqtt.outbox.max_results", "negative outbox size")
	}
	for i, h := range c.HTTP.ConsoleShifts {
		if h < 0 || h > 23 || (i > 0 && h <= c.HTTP.ConsoleShifts[i-1]) {
			bad("http.console_shifts", "%v: want the hours (0..23) at which shifts start, ascending, e.g. [6, 14, 22]", c.HTTP.ConsoleShifts)
			break
		}
	}
	if len(c.HTTP.ConsoleShifts) > 24 {
		bad("http.console_shifts", "%d shifts; at most 24", len(c.HTTP.ConsoleShifts))
	}
	if (c.HTTP.TLS.Cert == "") != (c.HTTP.TLS.Key == "") {
		bad("http.tls.cert", "HTTPS needs both cert and key")
	}
	for path, f := range map[string]string{"http.tls.cert": c.HTTP.TLS.Cert, "http.tls.key": c.HTTP.TLS.Key} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				bad(path, "%v", err)
			}
		}
	}
	if c.HTTP.TLS.Cert != "" && c.HTTP.Listen == "" {
		bad("http.tls.cert", "set, but HTTP is off (no http.listen)")
	}
	if c.HTTP.ConsoleUsersFile != "" && (!c.HTTP.Console || c.HTTP.Listen == "") {
		bad("http.console_users_file", "set, but the console is off (http.console: false or no http.listen)")
	}
	if c.Evidence.Frames < 0 || c.Evidence.Frames > 1000000 {
		bad("evidence.frames", "%d outside 0..1000000", c.Evidence.Frames)
	}
	if c.Evidence.Frames > 0 && (c.Evidence.MaxMB < 1 || c.Evidence.MaxMB > 1<<20) {
		bad("evidence.max_mb", "%d outside 1..1048576", c.Evidence.MaxMB)
	}
	c.validateSCADA(bad)
	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf("log.format", c.Log.Format, "text", "json")
	if len(es) == 0 {
		return nil
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].Path < es[j].Path })
	return es
}

// validateSCADA checks the sparkplug, plc and recipes sections.
func (c *Config) validateSCADA(bad func(path, format string, a ...any)) {
	id := func(path, v string, required bool) {
		if (required && v == "") || strings.ContainsAny(v, "/+# ") {
			bad(path, "%q: must be non-empty without spaces, '/', '+' or '#' (a Sparkplug topic level)", v)
		}
	}
	sp := &c.Sparkplug
	if sp.Enabled {
		id("sparkplug.group_id", sp.GroupID, true)
		id("sparkplug.edge_node_id", c.EdgeNode(), true)
		id("sparkplug.device_id", c.Device(), true)
		id("sparkplug.primary_host_id", sp.PrimaryHostID, false)
	}
	for _, u := range sp.Servers {
		if !strings.HasPrefix(u, "tcp://") && !strings.HasPrefix(u, "ssl://") && !strings.HasPrefix(u, "ws://") && !strings.HasPrefix(u, "wss://") {
			bad("sparkplug.servers", "%q is not a tcp://, ssl://, ws:// or wss:// URL", u)
		}
	}
	if sp.ClientID != "" && sp.ClientID == c.MQTT.ClientID {
		bad("sparkplug.client_id", "%q is mqtt.client_id too: two connections with one client id throw each other off the broker", sp.ClientID)
	}
	if u := sp.MapURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		bad("sparkplug.map_url", "%q is not an http:// or https:// URL", u)
	}
	if c.PLC.Enabled {
		if d := time.Duration(c.PLC.Heartbeat); d < 100*time.Millisecond || d > time.Hour {
			bad("plc.heartbeat", "%v outside 100ms..1h", d)
		}
		if d := time.Duration(c.PLC.ResultTimeout); d < 100*time.Millisecond || d > time.Hour {
			bad("plc.result_timeout", "%v outside 100ms..1h", d)
		}
	}
	names, numbers, banks := map[string]bool{}, map[int]bool{}, map[uint64]bool{}
	for i, r := range c.Recipes.List {
		p := fmt.Sprintf("recipes.list[%d]", i)
		switch {
		case r.Name == "" || len(r.Name) > 64 || strings.ContainsAny(r.Name, "/+#\n"):
			bad(p+".name", "%q: 1 to 64 characters without '/', '+', '#'", r.Name)
		case names[r.Name]:
			bad(p+".name", "%q named twice", r.Name)
		}
		switch {
		case r.Number < 1 || r.Number > 32767:
			bad(p+".number", "%d outside 1..32767", r.Number)
		case numbers[r.Number]:
			bad(p+".number", "%d used twice", r.Number)
		}
		switch {
		case r.Bank == 0:
			bad(p+".bank", "no bank version")
		case banks[r.Bank]:
			// A result names its recipe by the bank that scored it.
			bad(p+".bank", "version %d belongs to two recipes", r.Bank)
		}
		names[r.Name], numbers[r.Number], banks[r.Bank] = true, true, true
	}
	if d := c.Recipes.Default; d != "" && !names[d] {
		bad("recipes.default", "%q is not a recipe of recipes.list", d)
	}
	if c.Recipes.PLCSelect && len(c.Recipes.List) == 0 {
		bad("recipes.plc_select", "set, but recipes.list is empty")
	}
}

// cameraPaths names the config path of each camera.Config field that
// Validate can report.
var cameraPaths = map[string]string{
	"Source": "camera.source", "Mode": "camera.mode", "MaxFPS": "camera.max_fps", "FPS": "camera.fps",
	"Width": "camera.width", "Height": "camera.height", "Buffers": "camera.buffers", "Format": "camera.format",
	"ROI": "camera.roi", "Queue": "queue.size", "Drop": "queue.drop", "Settle": "camera.folder.settle",
	"Poll": "camera.folder.poll", "Done": "camera.folder.done", "BackoffMax": "camera.backoff_max", "MaxPixels": "camera.max_pixels",
	"ReadTimeout": "camera.read_timeout",
	"ExecFormat":  "camera.exec.format", "ExecWidth": "camera.exec.width", "ExecHeight": "camera.exec.height",
	"ExecScale": "camera.exec.scale",
}

// CameraConfig is the camera and queue sections as a camera.Config for
// this station, checked by package camera (errors are camera.Errors).
func (c *Config) CameraConfig() (camera.Config, error) {
	cc := camera.Config{Source: c.Camera.Source, ID: c.Station.ID + ":camera", MaxFPS: c.Camera.MaxFPS,
		Width: c.Camera.Width, Height: c.Camera.Height, FPS: c.Camera.FPS, Format: c.Camera.Format, Buffers: c.Camera.Buffers,
		Queue: c.Queue.Size, Drop: c.Queue.Drop,
		Settle: time.Duration(c.Camera.Folder.Settle), Poll: time.Duration(c.Camera.Folder.Poll), Done: c.Camera.Folder.Done,
		BackoffMax: time.Duration(c.Camera.Backoff), ReadTimeout: time.Duration(c.Camera.ReadTimeout), MaxPixels: c.Camera.MaxPixels,
		ExecFormat: c.Camera.Exec.Format, ExecWidth: c.Camera.Exec.Width, ExecHeight: c.Camera.Exec.Height}
	var es camera.Errors
	var err error
	if cc.Mode, err = camera.ParseMode(c.Camera.Mode); err != nil {
		es = append(es, camera.FieldError{Field: "Mode", Msg: err.Error()})
	}
	if cc.ROI, err = camera.ParseROI(c.Camera.ROI); err != nil {
		es = append(es, camera.FieldError{Field: "ROI", Msg: err.Error()})
	}
	if cc.ExecScale, err = camera.ParseScale(c.Camera.Exec.Scale); err != nil {
		es = append(es, camera.FieldError{Field: "ExecScale", Msg: err.Error()})
	}
	if err := cc.Validate(); err != nil {
		var ve camera.Errors
		if !errors.As(err, &ve) {
			return cc, err
		}
		es = append(es, ve...)
	}
	if len(es) > 0 {
		return cc, es
	}
	return cc, nil
}

// EvidenceDir is where the evidence ring keeps its frames.
func (c *Config) EvidenceDir() string {
	if c.Evidence.Dir != "" {
		return c.Evidence.Dir
	}
	return filepath.Join(filepath.Dir(c.Bank.DB), "evidence")
}

// ModelsDir is where pushed backbones are kept.
func (c *Config) ModelsDir() string {
	if c.Bank.Models != "" {
		return c.Bank.Models
	}
	return filepath.Join(filepath.Dir(c.Bank.DB), "models")
}

// YAML returns the effective configuration as YAML.
func (c *Config) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
