package daemon

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/camera"
	"github.com/linesight/linesight/mqtt"
)

// thresholdBounds is the range an operator's threshold may take for a
// bank: from half the lowest held-out good score (below it every good part
// would fail) to four times the calibrated threshold (above it defects
// pass unnoticed). A threshold outside is a typing error or an attack.
func thresholdBounds(m *bank.Meta) (lo, hi float64) {
	th := &m.Threshold
	lo = 0.5 * th.Stats.Min
	if !(lo > 0) {
		lo = 0.25 * th.Value
	}
	return lo, 4 * th.Value
}

// commands are the MQTT commands the station takes (mqtt.Cmd*), by name.
// Each takes the request and, for state-changing ones, the authorized body.
func (s *station) commands() map[string]func(call) (any, error) {
	return map[string]func(call) (any, error){
		mqtt.CmdTrigger:      s.cmdTrigger,
		mqtt.CmdStatus:       s.cmdStatus,
		mqtt.CmdThreshold:    s.cmdThreshold,
		mqtt.CmdBankActivate: s.cmdActivate,
		mqtt.CmdBankRollback: s.cmdRollback,
		mqtt.CmdBankPush:     s.cmdPush,
		mqtt.CmdBankEnroll:   s.cmdEnroll,
		mqtt.CmdBankAppend:   s.cmdAppend,
		mqtt.CmdRecipeSelect: s.cmdRecipeSelect,
		mqtt.CmdRecipeList:   s.cmdRecipeList,
	}
}

// stateChanging are the commands that can change pass/fail: they must be
// signed by a trusted key (or the station must allow unsigned changes), and
// are audited.
var stateChanging = map[string]bool{mqtt.CmdThreshold: true, mqtt.CmdBankActivate: true, mqtt.CmdBankRollback: true,
	mqtt.CmdBankEnroll: true, mqtt.CmdBankAppend: true, mqtt.CmdRecipeSelect: true}

// call is one command to run: the request, its authorized body (nil for
// commands that change nothing) and who sent it.
type call struct {
	req  mqtt.Request
	body []byte
	who  string
}

// command answers cmd/<name>: what it returns is the reply's result, its
// error the reply's error. A malformed, unknown or unauthorized command
// changes nothing.
func (s *station) command(name string, req mqtt.Request) (any, error) {
	cmds := s.commands()
	h, ok := cmds[name]
	if !ok {
		names := make([]string, 0, len(cmds))
		for n := range cmds {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("unknown command %q (%s)", name, strings.Join(names, ", "))
	}
	if !stateChanging[name] {
		return h(call{req: req, who: "mqtt"})
	}
	body, who, err := s.authorize(name, req)
	if err == nil {
		var res any
		if res, err = h(call{req: req, body: body, who: who}); err == nil {
			s.audit(bank.AuditEntry{Action: "command", Who: who, Result: bank.AuditOK, Detail: name + " " + string(body)})
			return res, nil
		}
	}
	s.audit(bank.AuditEntry{Action: "command", Who: who, Result: bank.AuditRefused, Reason: err.Error(), Detail: name})
	return nil, err
}

// commandRefused audits a command the MQTT client refused before it ran.
func (s *station) commandRefused(name, reason string) {
	s.audit(bank.AuditEntry{Action: "command", Who: "mqtt", Result: bank.AuditRefused, Reason: reason, Detail: name})
}

func (s *station) cmdTrigger(call) (any, error) {
	if s.cam.Mode() != camera.Triggered {
		return nil, errors.New("the camera is in continuous mode; set camera.mode: triggered")
	}
	if err := s.cam.Trigger(); err != nil {
		return nil, err
	}
	return mqtt.TriggerReply{Triggered: true}, nil
}

func (s *station) cmdStatus(call) (any, error) {
	return s.status(mqtt.StateOnline), nil
}

func (s *station) cmdThreshold(c call) (any, error) {
	var p mqtt.ThresholdRequest
	if err := strictDecode(c.body, &p); err != nil {
		return nil, fmt.Errorf("threshold: %v", err)
	}
	det := s.banks.current()
	if det == nil {
		return nil, errNeedsBank
	}
	switch {
	case p.Reset && p.Set != nil:
		return nil, errors.New(`threshold: "set" and "reset" together; send one`)
	case p.Reset:
		s.banks.setThreshold(0)
	case p.Set != nil:
		lo, hi := thresholdBounds(&det.Bank().Meta)
		if !(*p.Set >= lo && *p.Set <= hi) {
			return nil, fmt.Errorf("threshold: %v outside %.4g..%.4g, the range this bank allows (half its lowest good score to four times its calibrated threshold)", *p.Set, lo, hi)
		}
		s.banks.setThreshold(*p.Set)
	}
	t, override := det.Threshold()
	go s.publishStatus()
	return mqtt.ThresholdReply{Threshold: t, BankThreshold: det.Bank().Meta.Threshold.Value, Override: override}, nil
}

func (s *station) cmdActivate(c call) (any, error) {
	var p mqtt.ActivateRequest
	if err := strictDecode(c.body, &p); err != nil || p.Version == 0 {
		return nil, errors.New(`bank/activate: want {"id": ..., "version": N}`)
	}
	v, err := s.banks.activate(p.Version)
	if err != nil {
		return nil, err
	}
	return mqtt.VersionReply{Version: v}, nil
}

func (s *station) cmdRollback(c call) (any, error) {
	if err := strictDecode(c.body, &struct{}{}); err != nil {
		return nil, fmt.Errorf("bank/rollback takes no fields: %v", err)
	}
	v, err := s.banks.rollback()
	if err != nil {
		return nil, err
	}
	return mqtt.VersionReply{Version: v}, nil
}
