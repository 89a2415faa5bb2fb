package mqtt

import "encoding/json"

// This file is the wire contract: every topic Linesight uses under
// <prefix>/<station>/ and every JSON payload it publishes or accepts, as Go
// types. The daemon publishes these types, `linesight watch` and
// `inspect --json` read and print them; the README documents them from here.

// Topics, relative to <prefix>/<station>/.
const (
	// TopicResult carries a Result per inspected frame (QoS mqtt.qos, not
	// retained; queued in the outbox while the broker is away).
	TopicResult = "result"
	// TopicVerdict is the last verdict, "PASS" or "FAIL" (retained, QoS
	// 1, not through the outbox: only the newest value is published after
	// an outage, once the results before it are with the broker).
	TopicVerdict = "verdict"
	// TopicScore is the last image score as decimal text (retained, as
	// TopicVerdict).
	TopicScore = "score"
	// TopicStatus is the station's Status (retained); the broker publishes
	// Status{State: "offline"} as the last will when the station vanishes.
	TopicStatus = "status"
	// TopicMapPrefix + <seq> carries a frame's anomaly map as PNG.
	TopicMapPrefix = "map/"
	// TopicCommandPrefix + <name> takes a Request; the reply goes to
	// TopicCommandPrefix + <name> + TopicReplySuffix.
	TopicCommandPrefix = "cmd/"
	TopicReplySuffix   = "/reply"
)

// Verdicts.
const (
	Pass = "PASS"
	Fail = "FAIL"
)

// VerdictOf is Fail for a failing part, else Pass.
func VerdictOf(fail bool) string {
	if fail {
		return Fail
	}
	return Pass
}

// Result is the outcome of one inspected frame.
type Result struct {
	Station string `json:"station"`
	// Seq numbers the station's frames: 1, 2, ... from the camera.
	Seq uint64 `json:"seq"`
	// Time is when the frame was captured (RFC 3339, UTC, nanoseconds).
	Time    string `json:"time"`
	Verdict string `json:"verdict"` // Pass or Fail
	// Score is the image score in feature units; the part fails when it is
	// above Threshold.
	Score float64 `json:"score"`
	// Normalized maps Score to [0, 1]: 0.5 at the threshold, about 0.05
	// for a typical good part.
	Normalized  float64 `json:"normalized"`
	Threshold   float64 `json:"threshold"`
	BankVersion uint64  `json:"bank_version"`
	// Recipe and RecipeNumber name the product recipe whose bank scored
	// the frame ("" and 0 on a station without recipes, or when the bank
	// in use is none of its recipes').
	Recipe       string  `json:"recipe"`
	RecipeNumber int     `json:"recipe_number,omitempty"`
	Latency      Latency `json:"latency_ms"`
	// Frame is the frame's width and height in pixels (after the camera's
	// region of interest).
	Frame [2]int `json:"frame_size"`
	// Regions are the anomalous areas, highest peak first (never null).
	Regions []Region `json:"regions"`
	// Map says where the anomaly map is published, or is null when this
	// frame has none (maps.policy, or the encoder was behind).
	Map *MapRef `json:"map"`

	// Image and Overlay are set by `linesight inspect --json` only: the
	// file scored and the overlay written for it.
	Image   string `json:"image,omitempty"`
	Overlay string `json:"overlay,omitempty"`
}

// Latency is the time a frame spent in each stage, in milliseconds. The
// stages between Capture and Total are the detector's (patchcore.Stage).
type Latency struct {
	Capture    float64 `json:"capture"` // captured -> inspection start (queueing)
	Preprocess float64 `json:"preprocess"`
	Backbone   float64 `json:"backbone"`
	Embed      float64 `json:"embed"`
	Search     float64 `json:"search"` // nearest bank vectors and the image score
	Map        float64 `json:"map"`    // anomaly map and regions
	Total      float64 `json:"total"`  // captured -> result
}

// Region is an anomalous area: a box in frame pixels, the map's peak in it
// and its size in model-input pixels.
type Region struct {
	X    int     `json:"x"`
	Y    int     `json:"y"`
	W    int     `json:"w"`
	H    int     `json:"h"`
	Peak float64 `json:"peak"`
	Area int     `json:"area_px"`
}

// MapRef says where a frame's anomaly map is published.
type MapRef struct {
	Topic  string `json:"topic"`  // full topic: <prefix>/<station>/map/<seq>
	Format string `json:"format"` // "heatmap" (jet over the frame) or "raw" (8-bit grey)
}

// Station states in Status.
const (
	StateOnline  = "online"
	StateOffline = "offline"
	// StateNeedsBank: connected, but there is no bank to inspect with yet
	// (a fresh install); frames are not inspected until one is taught
	// (CmdBankEnroll), pushed or activated.
	StateNeedsBank = "needs-bank"
)

// Status is the station's retained state.
type Status struct {
	State   string `json:"state"` // StateOnline, StateNeedsBank or StateOffline
	Station string `json:"station"`
	Version string `json:"version"` // Linesight's version
	Time    string `json:"time"`    // RFC 3339, UTC
	// The rest is present when online.
	Model  *ModelStatus  `json:"model,omitempty"`
	Bank   *BankStatus   `json:"bank,omitempty"`
	Camera *CameraStatus `json:"camera,omitempty"`
	// ThresholdOverride is the operator's threshold (cmd/threshold or
	// scoring.threshold), absent when the bank's is in force.
	ThresholdOverride *float64 `json:"threshold_override,omitempty"`
	// Evidence is what the evidence ring holds (absent when it is off).
	Evidence *EvidenceStatus `json:"evidence,omitempty"`
	// Enroll is teach mode's current or last run since the start.
	Enroll *EnrollState `json:"enroll,omitempty"`
	// Transfer is the current or last bank push.
	Transfer *TransferState `json:"transfer,omitempty"`
}

// ModelStatus names the backbone in use.
type ModelStatus struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// BankStatus describes the active bank.
type BankStatus struct {
	Version   uint64  `json:"version"`
	Created   string  `json:"created"` // RFC 3339
	Vectors   int     `json:"vectors"`
	Threshold float64 `json:"threshold"` // the bank's calibrated threshold
	// Recipe and RecipeNumber name the product recipe whose bank this is
	// (absent on a station without recipes, or for a bank that is none of
	// its recipes').
	Recipe       string `json:"recipe,omitempty"`
	RecipeNumber int    `json:"recipe_number,omitempty"`
	// DBError says what is wrong with the bank database file (gone,
	// damaged); the bank in memory keeps serving meanwhile.
	DBError string `json:"db_error,omitempty"`
}

// CameraStatus is the frame source's health.
type CameraStatus struct {
	Source     string  `json:"source"`
	Kind       string  `json:"kind"`
	Connected  bool    `json:"connected"`
	Backend    string  `json:"backend,omitempty"`
	Width      int     `json:"width,omitempty"`
	Height     int     `json:"height,omitempty"`
	FPS        float64 `json:"fps,omitempty"`
	LastFrame  string  `json:"last_frame"` // RFC 3339; zero time when none yet
	Reconnects int     `json:"reconnects"`
	Read       uint64  `json:"frames_read"`
	Dropped    uint64  `json:"frames_dropped"`
	Skipped    uint64  `json:"files_skipped"`
	// Resyncs counts damaged stretches skipped in an exec: or pipe:
	// stream (garbage, a cut or oversized frame).
	Resyncs   uint64 `json:"resyncs,omitempty"`
	Stalled   bool   `json:"stalled"`
	LastError string `json:"last_error,omitempty"`
}

// Request is a command's JSON payload on cmd/<name>: an id echoed in the
// reply, and the command's own fields (Raw holds the whole payload).
type Request struct {
	ID   string          `json:"id"`
	Raw  json.RawMessage `json:"-"`
	Name string          `json:"-"`
}

// Reply is what cmd/<name>/reply carries.
type Reply struct {
	ID     string `json:"id"`
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Result any    `json:"result,omitempty"`
}

// Commands the station takes (the names after cmd/).
const (
	CmdTrigger      = "trigger"       // no fields; reply TriggerReply
	CmdStatus       = "status"        // no fields; reply Status
	CmdThreshold    = "threshold"     // ThresholdRequest; reply ThresholdReply
	CmdBankActivate = "bank/activate" // ActivateRequest; reply VersionReply
	CmdBankRollback = "bank/rollback" // no fields; reply VersionReply
	CmdBankEnroll   = "bank/enroll"   // EnrollRequest; replies EnrollState (several: progress, then done or failed)
	CmdBankAppend   = "bank/append"   // AppendRequest; reply AppendReply
	// CmdBankPush (transfer.go) offers a bundle: Offer; reply TransferState.
	CmdRecipeSelect = "recipe/select" // RecipeRequest; reply RecipeReply
	CmdRecipeList   = "recipe/list"   // no fields; reply RecipeList
)

// RecipeRequest selects a recipe by name or by number (one of them).
type RecipeRequest struct {
	Name   string `json:"name"`
	Number int    `json:"number"`
}

// RecipeReply is the recipe in use after recipe/select: the bank takes over
// at the next frame. SwitchMs is how long the switch took (its bank was
// loaded already).
type RecipeReply struct {
	Recipe   string  `json:"recipe"`
	Number   int     `json:"number"`
	Version  uint64  `json:"bank_version"`
	Changed  bool    `json:"changed"` // false: it was in use already
	SwitchMs float64 `json:"switch_ms"`
}

// RecipeInfo is one recipe of the station.
type RecipeInfo struct {
	Name    string `json:"name"`
	Number  int    `json:"number"`
	Version uint64 `json:"bank_version"`
	Loaded  bool   `json:"loaded"`          // its bank is loaded and can take over at once
	Error   string `json:"error,omitempty"` // why it is not
	Active  bool   `json:"active"`
}

// RecipeList answers recipe/list.
type RecipeList struct {
	Recipes []RecipeInfo `json:"recipes"`
	// PLCSelect: the PLC may select by number without a signature
	// (recipes.plc_select).
	PLCSelect bool `json:"plc_select"`
}

// The PLC handshake (plc.enabled), under <prefix>/<station>/: the station
// publishes the first group (retained, decimal text: "0"/"1" for flags),
// the PLC publishes the second (not retained; a retained one is refused).
const (
	TopicPLCReady       = "plc/ready"         // 1: the station takes a trigger now
	TopicPLCBusy        = "plc/busy"          // 1: triggered, result not out yet
	TopicPLCResultReady = "plc/result_ready"  // 1: a result is out and not acknowledged
	TopicPLCResultSeq   = "plc/result_seq"    // the seq of the result out (see Result.Seq)
	TopicPLCOK          = "plc/ok"            // 1: that part passed
	TopicPLCNG          = "plc/ng"            // 1: that part failed
	TopicPLCError       = "plc/error"         // PLCErr* code, 0 when none
	TopicPLCHeartbeat   = "plc/heartbeat"     // counts up every plc.heartbeat
	TopicPLCRecipe      = "plc/recipe_active" // the number of the recipe in use (0: none)

	TopicPLCTrigger      = "plc/trigger" // any payload: take a part (triggered camera mode)
	TopicPLCAck          = "plc/ack"     // the result_seq read: clears result_ready
	TopicPLCRecipeSelect = "plc/recipe"  // a recipe number (only with recipes.plc_select)
)

// PLC handshake error codes (plc/error and the Sparkplug "PLC/Error").
const (
	PLCErrNone       = 0 // no error
	PLCErrNoBank     = 1 // the station has no bank (needs-bank): nothing to inspect with
	PLCErrNotReady   = 2 // trigger while ready was 0 (busy, or the last result not acknowledged): ignored
	PLCErrTrigger    = 3 // the trigger was refused (camera not in triggered mode, or its trigger queue full)
	PLCErrInspection = 4 // the frame could not be inspected
	PLCErrTimeout    = 5 // no result within plc.result_timeout of the trigger (camera gave no frame)
	PLCErrAck        = 6 // ack of another seq than result_seq: result_ready stays
	PLCErrRecipe     = 7 // a recipe selection was refused (unknown number, not authorized, bank not loaded)
	PLCErrCamera     = 8 // trigger while the camera is not connected
)

// TopicAudit carries an AuditEntry for every bank change or refusal (and,
// with command authorization, every state-changing command), queued in the
// outbox like results.
const TopicAudit = "audit"

// AuditEntry is one entry of the station's audit log (the same entries
// `linesight bank history` shows).
type AuditEntry struct {
	Time    string `json:"time"`   // RFC 3339, UTC
	Action  string `json:"action"` // build, import, push, activate, rollback, canary, command, ...
	Who     string `json:"who"`    // "key:<id>", an MQTT client, "cli:<user>@<host>", "operator"
	Version uint64 `json:"version,omitempty"`
	Serial  uint64 `json:"serial,omitempty"`
	Result  string `json:"result"` // ok, refused, failed
	Reason  string `json:"reason,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// TriggerReply answers cmd/trigger.
type TriggerReply struct {
	Triggered bool `json:"triggered"`
}

// ThresholdRequest sets the operator's threshold (Set) or returns to the
// bank's (Reset) until restart.
type ThresholdRequest struct {
	Set   *float64 `json:"set"`
	Reset bool     `json:"reset"`
}

// ThresholdReply is the threshold in force after cmd/threshold.
type ThresholdReply struct {
	Threshold     float64 `json:"threshold"`
	BankThreshold float64 `json:"bank_threshold"`
	Override      bool    `json:"override"`
}

// ActivateRequest names the bank version to activate.
type ActivateRequest struct {
	Version uint64 `json:"version"`
}

// VersionReply names the bank version now active.
type VersionReply struct {
	Version uint64 `json:"version"`
}

// EvidenceStatus describes the evidence ring: the last inspected frames
// kept on disk with their results, by seq (cmd/bank/append takes them).
type EvidenceStatus struct {
	Frames  int    `json:"frames"`
	Bytes   int64  `json:"bytes"`
	Oldest  uint64 `json:"oldest_seq"`
	Newest  uint64 `json:"newest_seq"`
	Skipped uint64 `json:"skipped"` // frames not kept since the start: the writer was behind
}

// EnrollRequest starts teach mode: the station takes its next Count frames
// (in triggered mode, one per trigger) as good parts, builds a bank from
// them with its model and the recipe of the bank in use (the defaults when
// it has none), calibrates it, stores it as a new version and, with
// Activate, puts it in use. Inspection goes on with the bank in use
// meanwhile.
type EnrollRequest struct {
	Count    int    `json:"count"`     // 2..1000
	Activate bool   `json:"activate"`  // put the new bank in use when built
	Note     string `json:"note"`      // stored with the bank
	Timeout  int    `json:"timeout_s"` // give up when the frames have not come in this long (0 = 1 hour)
	// Interval is the least time between two frames taken, in
	// milliseconds: on a continuous camera, so that the frames are other
	// parts, not the same part N times (0 = every frame).
	Interval int `json:"interval_ms"`
}

// Enrollment states.
const (
	EnrollCapturing = "capturing" // taking frames
	EnrollBuilding  = "building"  // embedding, coreset, calibration
	EnrollDone      = "done"      // stored (and active with activate)
	EnrollFailed    = "failed"    // see Error; nothing changed
)

// EnrollState is the progress of teach mode: the replies to
// cmd/bank/enroll carry it, and Status.Enroll shows the current or last one.
type EnrollState struct {
	ID       string `json:"id"`
	State    string `json:"state"` // EnrollCapturing ... EnrollFailed
	Captured int    `json:"captured"`
	Count    int    `json:"count"`
	// Stage, Done and Total are the build's progress while building
	// (stages "embed", "coreset", "calibrate").
	Stage   string `json:"stage,omitempty"`
	Done    int    `json:"done,omitempty"`
	Total   int    `json:"total,omitempty"`
	Version uint64 `json:"version,omitempty"` // the stored bank, when done
	Active  bool   `json:"active,omitempty"`
	// Threshold and ExpectedFRR are the new bank's calibrated threshold and
	// the false-reject rate its rule expects, when done.
	Threshold   float64 `json:"threshold,omitempty"`
	ExpectedFRR float64 `json:"expected_frr,omitempty"`
	// ThresholdOverride is the operator's threshold (cmd/threshold,
	// scoring.threshold) that stays in force over the new bank's.
	ThresholdOverride *float64 `json:"threshold_override,omitempty"`
	Error             string   `json:"error,omitempty"`
	Started           string   `json:"started"` // RFC 3339, UTC
}

// AppendRequest names frames of the evidence ring (by seq) that were good
// parts: their patches the bank does not cover yet are added to it.
type AppendRequest struct {
	Seqs     []uint64 `json:"seqs"`
	Activate *bool    `json:"activate"` // default true
	Note     string   `json:"note"`
}

// AppendReply tells what cmd/bank/append did.
type AppendReply struct {
	Version      uint64  `json:"version"`
	Active       bool    `json:"active"`
	From         uint64  `json:"from_version"`
	Added        int     `json:"patches_added"`
	Vectors      int     `json:"vectors"` // in the new bank
	Threshold    float64 `json:"threshold"`
	OldThreshold float64 `json:"old_threshold"`
	// ThresholdOverride is the operator's threshold in force over the new
	// bank's, when there is one.
	ThresholdOverride *float64  `json:"threshold_override,omitempty"`
	Before            []float64 `json:"scores_before"` // of the appended frames, old bank
	After             []float64 `json:"scores_after"`  // and new bank
}
