package config

import (
	"strings"
	"testing"
	"time"
)

// TestSCADAKeys: the sparkplug, plc and recipes sections parse, the
// Sparkplug ids default to the station id, and each rule refuses its case
// naming the field.
func TestSCADAKeys(t *testing.T) {
	l, err := Load("", []string{"station.id=press-7", "camera.source=dir:/tmp", "sparkplug.enabled=true", "sparkplug.primary_host_id=scada1", "plc.enabled=true", "plc.result_timeout=2s"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	c := &l.Config
	if c.EdgeNode() != "press-7" || c.Device() != "press-7" || c.Sparkplug.GroupID != "linesight" || c.Sparkplug.PrimaryHostID != "scada1" {
		t.Errorf("sparkplug ids: node %q device %q group %q host %q", c.EdgeNode(), c.Device(), c.Sparkplug.GroupID, c.Sparkplug.PrimaryHostID)
	}
	if time.Duration(c.PLC.ResultTimeout) != 2*time.Second || time.Duration(c.PLC.Heartbeat) != time.Second || !c.PLC.AckRequired {
		t.Errorf("plc %+v", c.PLC)
	}

	yml := `
station: {id: s1}
sparkplug: {enabled: true, group_id: "a/b", device_id: "cam 1", servers: [mqtt.local], map_url: "ftp://x"}
plc: {enabled: true, heartbeat: 1ms}
recipes:
  default: nope
  list:
    - {name: bottle-a, number: 1, bank: 3}
    - {name: bottle-a, number: 1, bank: 3}
    - {name: "", number: 40000, bank: 0}
`
	l, err = Parse("x.yaml", []byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = l.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`sparkplug.group_id (line 3): "a/b"`, `sparkplug.device_id (line 3): "cam 1"`, `sparkplug.servers (line 3): "mqtt.local"`,
		`sparkplug.map_url (line 3)`, `plc.heartbeat (line 4): 1ms outside`,
		`recipes.list[1].name: "bottle-a" named twice`, `recipes.list[1].number: 1 used twice`, `recipes.list[1].bank: version 3 belongs to two recipes`,
		`recipes.list[2].name: ""`, `recipes.list[2].number: 40000 outside`, `recipes.list[2].bank: no bank version`,
		`recipes.default (line 6): "nope" is not a recipe`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	l, _ = Load("", []string{"mqtt.client_id=line-7", "sparkplug.client_id=line-7"})
	if err := l.Validate(); err == nil || !strings.Contains(err.Error(), "sparkplug.client_id") {
		t.Errorf("one client id for both connections: %v", err)
	}
	l, _ = Load("", []string{"recipes.plc_select=true"})
	if err := l.Validate(); err == nil || !strings.Contains(err.Error(), "recipes.plc_select") {
		t.Errorf("plc_select without recipes: %v", err)
	}
}
