package mqtt

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// The block transfer moves a file (a bank bundle) from a tool to a station
// over MQTT, in blocks the station asks for, so that a transfer survives
// broker restarts and network drops without starting over, and passes
// through bridged brokers (only ordinary topics under the station's).
//
//  1. The tool sends the offer as the command bank/push (cmd/bank/push, an
//     Offer); the station replies on cmd/bank/push/reply with the
//     transfer's state, or a refusal.
//  2. The station asks for the blocks it lacks on push/<id>/request (a
//     BlockRequest: a window of block numbers as a bitmap), again whenever
//     no block came for a while.
//  3. The tool publishes each asked-for block on push/<id>/block (binary,
//     EncodeBlock: number, SHA-256 and data).
//  4. The station reports on push/<id>/state (TransferState): progress,
//     then verification, import, canary and a final state with the new
//     version or the reason for a refusal.
//
// Every block carries its own SHA-256, and the whole file's SHA-256 is in
// the offer: a damaged block is asked for again, a damaged file refused.

// Transfer topics, relative to <prefix>/<station>/; <id> is the transfer id.
const (
	CmdBankPush         = "bank/push"
	TopicPushPrefix     = "push/"
	TopicRequestSuffix  = "/request"
	TopicBlockSuffix    = "/block"
	TopicStateSuffix    = "/state"
	DefaultBlockSize    = 64 << 10 // fits brokers limited to 128 KiB packets
	MinBlockSize        = 1 << 10
	MaxBlockSize        = 1 << 20
	MaxTransferSize     = 2 << 30
	maxTransferIDLength = 64
)

// PushTopic is the topic of a transfer's messages of one kind (one of the
// Topic*Suffix constants), relative to the station.
func PushTopic(id, suffix string) string { return TopicPushPrefix + id + suffix }

// Offer proposes a transfer (the bank/push command).
type Offer struct {
	Transfer  string `json:"transfer"`   // id: letters, digits, '-' and '_'
	Size      int64  `json:"size"`       // bytes
	SHA256    string `json:"sha256"`     // of the whole file
	BlockSize int    `json:"block_size"` // bytes per block (the last may be shorter)
	// What to do with the bundle once it is verified.
	Activate       bool `json:"activate"`
	Canary         int  `json:"canary,omitempty"`    // frames to score with both banks before switching
	MaxFlips       int  `json:"max_flips,omitempty"` // verdict flips the canary allows
	AllowDowngrade bool `json:"allow_downgrade,omitempty"`
	// Timeout (seconds) after which a transfer without progress is
	// abandoned by the station; 0: the station's default.
	Timeout int `json:"timeout,omitempty"`
}

// Blocks is the number of blocks of the offer.
func (o *Offer) Blocks() int {
	return int((o.Size + int64(o.BlockSize) - 1) / int64(o.BlockSize))
}

// Check validates an offer received from outside.
func (o *Offer) Check() error {
	switch {
	case !validID(o.Transfer):
		return fmt.Errorf("bank/push: transfer id %q: want 1 to %d letters, digits, '-' or '_'", o.Transfer, maxTransferIDLength)
	case o.Size <= 0 || o.Size > MaxTransferSize:
		return fmt.Errorf("bank/push: size %d outside 1..%d", o.Size, int64(MaxTransferSize))
	case o.BlockSize < MinBlockSize || o.BlockSize > MaxBlockSize:
		return fmt.Errorf("bank/push: block size %d outside %d..%d", o.BlockSize, MinBlockSize, MaxBlockSize)
	case !isHex(o.SHA256, 64):
		return fmt.Errorf("bank/push: sha256 %q is not 64 hex digits", o.SHA256)
	case o.Canary < 0 || o.Canary > 100000 || o.MaxFlips < 0:
		return fmt.Errorf("bank/push: canary %d, max flips %d", o.Canary, o.MaxFlips)
	case o.Timeout < 0 || o.Timeout > 86400:
		return fmt.Errorf("bank/push: timeout %d s outside 0..86400", o.Timeout)
	}
	return nil
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > maxTransferIDLength {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// BlockRequest asks for blocks First+i for every bit i set in Bitmap
// (base64, bit i in byte i/8, least significant bit first).
type BlockRequest struct {
	Transfer string `json:"transfer"`
	First    int    `json:"first"`
	Bitmap   string `json:"bitmap"`
}

// maxRequestBlocks bounds the blocks one request may name.
const maxRequestBlocks = 4096

// NewBlockRequest asks for the given blocks (ascending, within
// maxRequestBlocks of the first).
func NewBlockRequest(id string, blocks []int) BlockRequest {
	if len(blocks) == 0 {
		return BlockRequest{Transfer: id}
	}
	first := blocks[0]
	bits := make([]byte, (blocks[len(blocks)-1]-first)/8+1)
	for _, b := range blocks {
		bits[(b-first)/8] |= 1 << ((b - first) % 8)
	}
	return BlockRequest{Transfer: id, First: first, Bitmap: base64.StdEncoding.EncodeToString(bits)}
}

// ParseBlockRequest decodes a request for a transfer of n blocks and
// returns the block numbers it names.
func ParseBlockRequest(payload []byte, n int) (string, []int, error) {
	var r BlockRequest
	if err := strictJSON(payload, &r); err != nil {
		return "", nil, fmt.Errorf("block request: %w", err)
	}
	bits, err := base64.StdEncoding.DecodeString(r.Bitmap)
	if err != nil || len(bits) > maxRequestBlocks/8 {
		return "", nil, fmt.Errorf("block request: bitmap is not base64 of at most %d bytes", maxRequestBlocks/8)
	}
	if r.First < 0 || r.First >= n {
		return "", nil, fmt.Errorf("block request: first block %d outside 0..%d", r.First, n-1)
	}
	var out []int
	for i, b := range bits {
		for k := range 8 {
			if b&(1<<k) != 0 {
				if blk := r.First + 8*i + k; blk < n {
					out = append(out, blk)
				}
			}
		}
	}
	return r.Transfer, out, nil
}

// blockMagic starts every block message.
var blockMagic = []byte("LSBK")

// blockHeader is magic, the block number (u32) and the data's SHA-256.
const blockHeader = 4 + 4 + sha256.Size

// EncodeBlock is the message carrying block n.
func EncodeBlock(n int, data []byte) []byte {
	out := make([]byte, blockHeader+len(data))
	copy(out, blockMagic)
	binary.BigEndian.PutUint32(out[4:], uint32(n))
	s := sha256.Sum256(data)
	copy(out[8:], s[:])
	copy(out[blockHeader:], data)
	return out
}

// ErrBlockDamaged: a block's data does not match its checksum.
var ErrBlockDamaged = errors.New("block damaged")

// DecodeBlock checks a block message and returns its number and data
// (a slice of msg).
func DecodeBlock(msg []byte) (int, []byte, error) {
	if len(msg) < blockHeader || !bytes.Equal(msg[:4], blockMagic) {
		return 0, nil, fmt.Errorf("block: not a block message (%d bytes)", len(msg))
	}
	n := binary.BigEndian.Uint32(msg[4:])
	data := msg[blockHeader:]
	if s := sha256.Sum256(data); !bytes.Equal(s[:], msg[8:blockHeader]) {
		return int(n), nil, fmt.Errorf("block %d: %w", n, ErrBlockDamaged)
	}
	return int(n), data, nil
}

// Transfer states, in the order a transfer goes through them; the last
// four are final.
const (
	StateReceiving = "receiving"
	StateVerifying = "verifying"
	StateImporting = "importing"
	StateCanary    = "canary"
	StateDone      = "done"
	StateRefused   = "refused"
	StateFailed    = "failed"
	StateAbandoned = "abandoned"
)

// FinalState reports whether a transfer in state s is over.
func FinalState(s string) bool {
	return s == StateDone || s == StateRefused || s == StateFailed || s == StateAbandoned
}

// TransferState is a transfer's progress and outcome, on push/<id>/state
// and in the station's status.
type TransferState struct {
	Transfer string `json:"transfer"`
	State    string `json:"state"`
	Received int    `json:"received"` // blocks
	Blocks   int    `json:"blocks"`
	// Version is the bank version stored (done), Active whether it is
	// now the active one.
	Version uint64 `json:"version,omitempty"`
	Active  bool   `json:"active,omitempty"`
	// Check names the check that refused the bundle ("signature",
	// "serial", "model", ...) and Reason says why.
	Check  string `json:"check,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Canary is the comparison of the two banks, with a canary.
	Canary *CanaryReport `json:"canary,omitempty"`
}

// CanaryReport compares the old and the new bank over the same frames.
type CanaryReport struct {
	Frames      int     `json:"frames"`
	Flips       int     `json:"flips"`     // frames whose verdict differs
	MaxFlips    int     `json:"max_flips"` // the most allowed
	Correlation float64 `json:"correlation"`
	Promoted    bool    `json:"promoted"`
}

// strictJSON decodes one JSON object into v, refusing unknown fields and
// trailing data.
func strictJSON(payload []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// TransferID extracts <id> from a topic .../push/<id>/<kind>.
func TransferID(topic string) string {
	i := strings.LastIndex(topic, "/"+strings.TrimSuffix(TopicPushPrefix, "/")+"/")
	if i < 0 {
		return ""
	}
	rest := topic[i+len(TopicPushPrefix)+1:]
	id, _, _ := strings.Cut(rest, "/")
	return id
}
