package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/trust"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

// canaryTimeout bounds how long a canary waits for its frames when the
// offer gives no timeout.
const canaryTimeout = 10 * time.Minute

// refusal is a bundle or command refused by a named check.
type refusal struct {
	check string
	err   error
}

func (r *refusal) Error() string { return r.check + ": " + r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func refuse(check string, err error) error { return &refusal{check: check, err: err} }

// checkOf names the check behind err ("" when it is not a refusal).
func checkOf(err error) string {
	var r *refusal
	if errors.As(err, &r) {
		return r.check
	}
	return ""
}

// errPushesOff: neither trusted keys nor allow_unsigned.
var errPushesOff = errors.New("remote changes are off on this station: set bank.trusted_keys (or bank.allow_unsigned: true on a lab bench)")

// authorize checks who sent command name and returns its body (the
// command's JSON object, without its id or signature) and who sent it.
// With trusted keys, only commands signed by one of them pass; without,
// only when the station allows unsigned changes.
func (s *station) authorize(name string, req mqtt.Request) ([]byte, string, error) {
	var env struct {
		Signed *trust.Signed `json:"signed"`
	}
	if err := json.Unmarshal(req.Raw, &env); err != nil {
		return nil, "", refuse("command", err)
	}
	if env.Signed != nil {
		if s.keys == nil {
			return nil, "", refuse("signature", errors.New("the command is signed but this station has no bank.trusted_keys to check it"))
		}
		body, key, err := s.keys.VerifyCommand(s.cfg.Station.ID, name, env.Signed, time.Now(), s.nonces)
		if err != nil {
			return nil, "key:" + key, refuse("signature", err)
		}
		return body, "key:" + key, nil
	}
	switch {
	case s.keys != nil:
		return nil, "unsigned", refuse("signature", fmt.Errorf("%w: bank.trusted_keys is set, so this command must be signed (--sign KEY)", trust.ErrUnsigned))
	case !s.cfg.Bank.AllowUnsigned:
		return nil, "unsigned", refuse("signature", errPushesOff)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(req.Raw, &fields); err != nil {
		return nil, "", refuse("command", err)
	}
	delete(fields, "id")
	body, _ := json.Marshal(fields)
	return body, "unsigned", nil
}

// strictDecode decodes a command body, refusing unknown fields.
func strictDecode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// cmdPush takes a bank push offer (mqtt.CmdBankPush).
func (s *station) cmdPush(c call) (any, error) {
	req := c.req
	body, who, err := s.authorize(mqtt.CmdBankPush, req)
	if err == nil {
		var o mqtt.Offer
		if err = strictDecode(body, &o); err != nil {
			err = refuse("offer", err)
		} else {
			var st mqtt.TransferState
			if st, err = s.recv.Offer(o); err == nil {
				s.pushWho.Store(o.Transfer, who)
				return st, nil
			}
			err = refuse("offer", err)
		}
	}
	s.audit(bank.AuditEntry{Action: "push", Who: who, Result: bank.AuditRefused, Reason: err.Error()})
	return nil, err
}

// pushed imports a received, whole bundle (the Receiver's done): it checks
// it, stores it with its backbone, and activates it, directly or after a
// canary. What came of it goes to the tool, the audit log and the status.
func (s *station) pushed(o mqtt.Offer, path string) {
	whoV, _ := s.pushWho.LoadAndDelete(o.Transfer)
	who, _ := whoV.(string)
	st, serial, err := s.importPush(o, path, who)
	if err != nil {
		st = mqtt.TransferState{State: mqtt.StateRefused, Check: checkOf(err), Reason: err.Error(), Canary: st.Canary}
		if st.Check == "" {
			st.State, st.Check = mqtt.StateFailed, "import"
		}
		s.audit(bank.AuditEntry{Action: "push", Who: who, Serial: serial, Result: bank.AuditRefused, Reason: err.Error()})
	}
	s.recv.Finish(o.Transfer, st)
}

func (s *station) importPush(o mqtt.Offer, path, who string) (mqtt.TransferState, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return mqtt.TransferState{}, 0, err
	}
	bd, err := bank.ReadBundle(f)
	f.Close()
	switch {
	case errors.Is(err, bank.ErrTruncated):
		return mqtt.TransferState{}, 0, refuse("truncated", err)
	case errors.Is(err, bank.ErrTampered):
		return mqtt.TransferState{}, 0, refuse("tampered", err)
	case err != nil:
		return mqtt.TransferState{}, 0, refuse("bundle", err)
	}
	m := &bd.Manifest
	if s.keys != nil {
		if err := bd.Verify(s.keys); err != nil {
			check := "signature"
			switch {
			case errors.Is(err, trust.ErrUnsigned):
				check = "unsigned"
			case errors.Is(err, trust.ErrUntrusted):
				check = "untrusted"
			case errors.Is(err, trust.ErrBadSignature):
				check = "tampered"
			}
			return mqtt.TransferState{}, m.Serial, refuse(check, err)
		}
	}
	last, err := s.readStore(func(st *bank.Store) (uint64, error) { return st.Serial() })
	if err != nil {
		return mqtt.TransferState{}, m.Serial, err
	}
	if m.Serial <= last && !o.AllowDowngrade {
		return mqtt.TransferState{}, m.Serial, refuse("serial", fmt.Errorf("bundle serial %d is not above %d, the last this station took (a replay or a downgrade; push with --allow-downgrade if it is meant)", m.Serial, last))
	}
	bk := bd.Bank
	bk.Meta.Origin = &bank.Origin{Version: m.Source.Version, Created: m.Source.Created, File: "push " + o.Transfer}
	if bd.Model != nil {
		p, err := model.Store(s.cfg.ModelsDir(), bd.Model)
		if err != nil {
			return mqtt.TransferState{}, m.Serial, refuse("model", err)
		}
		bk.Meta.Model.Path = p
	} else if !s.banks.haveModel(m.Model.SHA256) {
		return mqtt.TransferState{}, m.Serial, refuse("model", fmt.Errorf("the bank needs the backbone with sha256 %.12s, which this station does not have; push it with --with-model", m.Model.SHA256))
	}
	s.recv.Finish(o.Transfer, mqtt.TransferState{State: mqtt.StateImporting})
	// Load it beside the bank in use first: a bank this station cannot
	// score with is refused before it is stored.
	det, err := s.banks.prepare(bk)
	if err != nil {
		return mqtt.TransferState{}, m.Serial, refuse("recipe", err)
	}
	activate := o.Activate && o.Canary == 0
	detail := fmt.Sprintf("transfer %s, creator %s", o.Transfer, m.Creator)
	v, err := s.writeStore(func(st *bank.Store) (uint64, error) {
		return st.Apply(bank.Change{Put: bk, Activate: activate, Serial: m.Serial,
			Audit: &bank.AuditEntry{Action: "push", Who: who, Serial: m.Serial, Result: bank.AuditOK, Detail: detail}})
	})
	if err != nil {
		det.Close()
		return mqtt.TransferState{}, m.Serial, err
	}
	s.publishAudit(bank.AuditEntry{Action: "push", Who: who, Version: v, Serial: m.Serial, Result: bank.AuditOK, Detail: detail})
	done := mqtt.TransferState{State: mqtt.StateDone, Version: v}
	switch {
	case activate:
		s.banks.offerLoaded(det)
		done.Active = true
	case o.Activate: // with a canary
		s.recv.Finish(o.Transfer, mqtt.TransferState{State: mqtt.StateCanary, Version: v})
		rep, err := s.runCanary(det, o, v, who)
		done.Canary = &rep
		if err != nil {
			return done, m.Serial, err
		}
		done.Active = true
	default:
		det.Close()
	}
	return done, m.Serial, nil
}

// runCanary scores the next o.Canary frames with both banks and promotes
// version v when the verdicts flip on at most o.MaxFlips of them.
func (s *station) runCanary(pd *patchcore.Detector, o mqtt.Offer, v uint64, who string) (mqtt.CanaryReport, error) {
	c, err := s.banks.startCanary(pd, o.Canary)
	if err != nil {
		pd.Close()
		return mqtt.CanaryReport{}, refuse("canary", err)
	}
	wait := canaryTimeout
	if o.Timeout > 0 {
		wait = time.Duration(o.Timeout) * time.Second
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		s.banks.endCanary(c, fmt.Errorf("only %d of %d frames within %v", len(c.old), o.Canary, wait))
	}
	rep := c.report(o.MaxFlips)
	detail := fmt.Sprintf("%d frames, %d verdict flips (at most %d), score correlation %.3f", rep.Frames, rep.Flips, rep.MaxFlips, rep.Correlation)
	if !rep.Promoted {
		pd.Close()
		reason := detail
		if c.err != nil {
			reason = c.err.Error() + "; " + detail
		}
		err := refuse("canary", fmt.Errorf("kept the bank in use: %s", reason))
		s.audit(bank.AuditEntry{Action: "canary", Who: who, Version: v, Result: bank.AuditRefused, Reason: err.Error()})
		return rep, err
	}
	_, err = s.writeStore(func(st *bank.Store) (uint64, error) {
		return v, st.ActivateAudited(v, &bank.AuditEntry{Action: "canary", Who: who, Result: bank.AuditOK, Detail: "promoted: " + detail})
	})
	if err != nil {
		pd.Close()
		return rep, err
	}
	s.publishAudit(bank.AuditEntry{Action: "canary", Who: who, Version: v, Result: bank.AuditOK, Detail: "promoted: " + detail})
	s.banks.offerLoaded(pd)
	return rep, nil
}

// readStore opens the bank database read-only for f.
func (s *station) readStore(f func(*bank.Store) (uint64, error)) (uint64, error) {
	st, err := bank.OpenStore(s.cfg.Bank.DB, true)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return f(st)
}

// writeStore opens the bank database for writing, briefly, for f.
func (s *station) writeStore(f func(*bank.Store) (uint64, error)) (uint64, error) {
	st, err := bank.OpenStore(s.cfg.Bank.DB, false)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return f(st)
}

// audit records e in the bank database's audit log and publishes it;
// refusals past the rate limit are counted and recorded together
// (refusals.go).
func (s *station) audit(e bank.AuditEntry) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Result == bank.AuditRefused {
		ok, held := s.refusals.admit(e)
		if held != nil {
			s.record(*held)
		}
		if !ok {
			return
		}
	}
	s.record(e)
}

// record writes e to the audit log and publishes it.
func (s *station) record(e bank.AuditEntry) {
	if _, err := s.writeStore(func(st *bank.Store) (uint64, error) { return 0, st.Audit(e) }); err != nil {
		s.log.Error("audit log", "err", err, "action", e.Action, "result", e.Result)
	}
	s.publishAudit(e)
}

// publishAudit publishes an audit entry already recorded.
func (s *station) publishAudit(e bank.AuditEntry) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	s.log.Info("audit", "action", e.Action, "who", e.Who, "version", e.Version, "serial", e.Serial, "result", e.Result, "reason", e.Reason)
	raw, _ := json.Marshal(mqtt.AuditEntry{Time: e.Time.UTC().Format(time.RFC3339Nano), Action: e.Action, Who: e.Who, Version: e.Version,
		Serial: e.Serial, Result: e.Result, Reason: e.Reason, Detail: e.Detail})
	s.client.Publish(mqtt.Item{Kind: mqtt.KindResult, Topic: mqtt.TopicAudit, Payload: raw})
}
