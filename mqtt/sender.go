package mqtt

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Dial says how a tool reaches a broker.
type Dial struct {
	Broker   string
	ClientID string
	TLS      *tls.Config
	Username string
	Password string
}

// Push is one transfer of a file to one station, from the tool's side.
type Push struct {
	Prefix, Station string
	Transfer        string // transfer id; default: derived from the file's hash and the time
	BlockSize       int    // default DefaultBlockSize
	// Activate, Canary, MaxFlips, AllowDowngrade and Timeout go into the
	// offer (see Offer).
	Activate       bool
	Canary         int
	MaxFlips       int
	AllowDowngrade bool
	StationTimeout time.Duration
	// Command wraps the offer's JSON into the bank/push command's payload
	// (it adds the request id, and may sign it); nil sends it as it is.
	Command func(offer []byte) ([]byte, error)
	// Progress is told every state the station reports.
	Progress func(TransferState)
	// OfferEvery is how often the offer is repeated until the station
	// answers (default 5s).
	OfferEvery time.Duration
}

// ErrRefused: the station refused the transfer or the bundle; the state
// says which check.
var ErrRefused = errors.New("refused by the station")

// Send transfers file to the station over d, serving the blocks the station
// asks for, until the station reports a final state or ctx ends. The
// returned state is the station's last word; the error is nil only when
// the transfer ended in StateDone.
func (p *Push) Send(ctx context.Context, d Dial, file []byte) (TransferState, error) {
	sum := sha256.Sum256(file)
	hexSum := hex.EncodeToString(sum[:])
	if p.BlockSize == 0 {
		p.BlockSize = DefaultBlockSize
	}
	if p.Transfer == "" {
		p.Transfer = fmt.Sprintf("%s-%x", hexSum[:12], time.Now().UnixNano()&0xffffffff)
	}
	if p.OfferEvery == 0 {
		p.OfferEvery = 5 * time.Second
	}
	o := Offer{Transfer: p.Transfer, Size: int64(len(file)), SHA256: hexSum, BlockSize: p.BlockSize, Activate: p.Activate,
		Canary: p.Canary, MaxFlips: p.MaxFlips, AllowDowngrade: p.AllowDowngrade, Timeout: int(p.StationTimeout / time.Second)}
	if err := o.Check(); err != nil {
		return TransferState{}, err
	}
	base := p.Prefix + "/" + p.Station + "/"
	replyTopic := base + TopicCommandPrefix + CmdBankPush + TopicReplySuffix
	type msg struct {
		topic   string
		payload []byte
	}
	in := make(chan msg, 4096)
	sub, err := SubscribeAll(d.Broker, d.ClientID, []string{replyTopic, base + PushTopic(p.Transfer, "/#")}, d.TLS, d.Username, d.Password,
		func(topic string, payload []byte, _ bool) {
			select {
			case in <- msg{topic, append([]byte(nil), payload...)}:
			default: // the station asks again if a request is lost
			}
		})
	if err != nil {
		return TransferState{}, err
	}
	defer sub.Close()

	offerJSON, _ := json.Marshal(o)
	// The command is made anew for every offer: a signed one carries a
	// fresh time and nonce, so an offer repeated because the reply was
	// slow or lost is not refused as a replay of the first (the station
	// answers a repeated offer of a running transfer with its state).
	command := func() ([]byte, error) {
		if p.Command == nil {
			return offerJSON, nil
		}
		return p.Command(offerJSON)
	}
	payload, err := command()
	if err != nil {
		return TransferState{}, err
	}
	var reqID string
	var req struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(payload, &req) == nil {
		reqID = req.ID
	}
	offer := func() {
		if err := sub.Publish(base+TopicCommandPrefix+CmdBankPush, 1, false, payload); err != nil {
			p.report(TransferState{Transfer: p.Transfer, State: "offering", Reason: err.Error()})
		}
		if next, err := command(); err == nil {
			payload = next
		}
	}
	offer()
	offered := false
	nblocks := o.Blocks()
	last := TransferState{Transfer: p.Transfer, State: "offering", Blocks: nblocks}
	tick := time.NewTicker(p.OfferEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("transfer %s: %w (last state %s, %d of %d blocks)", p.Transfer, ctx.Err(), last.State, last.Received, last.Blocks)
		case <-tick.C:
			if !offered {
				offer()
			}
		case m := <-in:
			switch {
			case m.topic == replyTopic:
				var r Reply
				if json.Unmarshal(m.payload, &r) != nil || (reqID != "" && r.ID != reqID) {
					continue
				}
				offered = true
				if !r.OK {
					last = TransferState{Transfer: p.Transfer, State: StateRefused, Check: "offer", Reason: r.Error, Blocks: nblocks}
					p.report(last)
					return last, fmt.Errorf("%w: %s", ErrRefused, r.Error)
				}
			case strings.HasSuffix(m.topic, TopicRequestSuffix):
				offered = true
				id, blocks, err := ParseBlockRequest(m.payload, nblocks)
				if err != nil || id != p.Transfer {
					continue
				}
				for _, b := range blocks {
					end := min(len(file), (b+1)*p.BlockSize)
					// A block that does not get through is asked for again.
					sub.Send(base+PushTopic(p.Transfer, TopicBlockSuffix), 1, false, EncodeBlock(b, file[b*p.BlockSize:end]))
				}
			case strings.HasSuffix(m.topic, TopicStateSuffix):
				var st TransferState
				if json.Unmarshal(m.payload, &st) != nil || st.Transfer != p.Transfer {
					continue
				}
				offered = true
				last = st
				p.report(st)
				if FinalState(st.State) {
					if st.State != StateDone {
						return st, fmt.Errorf("%w: %s: %s: %s", ErrRefused, st.State, st.Check, st.Reason)
					}
					return st, nil
				}
			}
		}
	}
}

func (p *Push) report(st TransferState) {
	if p.Progress != nil {
		p.Progress(st)
	}
}
