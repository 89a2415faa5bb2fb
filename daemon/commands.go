package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/linesight/linesight/camera"
	"github.com/linesight/linesight/mqtt"
)

// maxThreshold bounds an operator's threshold: larger values are typing
// errors, not thresholds.
const maxThreshold = 1e9

// commands are the MQTT commands the station takes (mqtt.Cmd*), by name.
func (s *station) commands() map[string]func(req mqtt.Request) (any, error) {
	return map[string]func(mqtt.Request) (any, error){
		mqtt.CmdTrigger:      s.cmdTrigger,
		mqtt.CmdStatus:       s.cmdStatus,
		mqtt.CmdThreshold:    s.cmdThreshold,
		mqtt.CmdBankActivate: s.cmdActivate,
		mqtt.CmdBankRollback: s.cmdRollback,
		mqtt.CmdBankPush:     s.cmdPush,
	}
}

// command answers cmd/<name>: what it returns is the reply's result, its
// error the reply's error. A malformed or unknown command changes nothing.
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
	return h(req)
}

func (s *station) cmdTrigger(mqtt.Request) (any, error) {
	if s.cam.Mode() != camera.Triggered {
		return nil, errors.New("the camera is in continuous mode; set camera.mode: triggered")
	}
	s.cam.Trigger()
	return mqtt.TriggerReply{Triggered: true}, nil
}

func (s *station) cmdStatus(mqtt.Request) (any, error) {
	return s.status(mqtt.StateOnline), nil
}

func (s *station) cmdThreshold(req mqtt.Request) (any, error) {
	var p mqtt.ThresholdRequest
	if err := json.Unmarshal(req.Raw, &p); err != nil {
		return nil, fmt.Errorf("threshold: %v", err)
	}
	switch {
	case p.Reset:
		s.banks.setThreshold(0)
	case p.Set != nil:
		if !(*p.Set > 0) || *p.Set > maxThreshold {
			return nil, fmt.Errorf("threshold: %v is not a positive number", *p.Set)
		}
		s.banks.setThreshold(*p.Set)
	}
	det := s.banks.current()
	t, override := det.Threshold()
	go s.publishStatus()
	return mqtt.ThresholdReply{Threshold: t, BankThreshold: det.Bank().Meta.Threshold.Value, Override: override}, nil
}

func (s *station) cmdActivate(req mqtt.Request) (any, error) {
	var p mqtt.ActivateRequest
	if err := json.Unmarshal(req.Raw, &p); err != nil || p.Version == 0 {
		return nil, errors.New(`bank/activate: want {"id": ..., "version": N}`)
	}
	v, err := s.banks.activate(p.Version)
	if err != nil {
		return nil, err
	}
	return mqtt.VersionReply{Version: v}, nil
}

func (s *station) cmdRollback(mqtt.Request) (any, error) {
	v, err := s.banks.rollback()
	if err != nil {
		return nil, err
	}
	return mqtt.VersionReply{Version: v}, nil
}
