package config

import (
	"github.com/linesight/linesight/camera"

	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestExampleIsValidAndEqualsDefaults(t *testing.T) {
	l, err := Load("linesight.example.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	d := Defaults()
	// The example spells out the defaults (plus a camera source).
	l.Camera.Source = ""
	if got, want := mustYAML(t, &l.Config), mustYAML(t, &d); got != want {
		t.Errorf("example differs from Defaults():\n%s\nvs\n%s", got, want)
	}
}

func mustYAML(t *testing.T, c *Config) string {
	b, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOverridesWithoutAFile(t *testing.T) {
	l, err := Load("", []string{"station.id=press-7", "camera.source=dir:/tmp/in", "model.path=m.tflite", "bank.db=b.db",
		"mqtt.broker=tcp://10.0.0.2:1883", "mqtt.prefix=plant/line1", "http.listen=:9100", "camera.folder.settle=1s", "mqtt.qos=0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	c := l.Config
	if c.Station.ID != "press-7" || c.Camera.Source != "dir:/tmp/in" || c.MQTT.Broker != "tcp://10.0.0.2:1883" || c.MQTT.Prefix != "plant/line1" ||
		c.HTTP.Listen != ":9100" || time.Duration(c.Camera.Folder.Settle) != time.Second || c.MQTT.QoS != 0 || c.Queue.Size != 4 {
		t.Errorf("config %+v", c)
	}
}

func TestErrorsNameFieldAndLine(t *testing.T) {
	yml := "station:\n  id: a/b\ncamera:\n  source: /dev/video0\n  mode: sometimes\nmqtt:\n  qos: 3\n  broker: mqtt.local\nmaps:\n  policy: fail\n"
	l, err := Parse("x.yaml", []byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = l.Validate()
	var es Errors
	if !errors.As(err, &es) || len(es) != 4 {
		t.Fatalf("Validate = %v", err)
	}
	for _, want := range []string{"camera.mode (line 5)", "mqtt.broker (line 8)", "mqtt.qos (line 7)", "station.id (line 2)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
	for _, c := range []struct{ yml, want string }{
		{"camera:\n  sorce: x\n", "field sorce not found"},
		{"camera:\n  max_fps: fast\n", "max_fps"},
		{"camera:\n  folder:\n    settle: soon\n", "not a duration"},
		{"- a\n- b\n", "top level must be a mapping"},
		{"a: [\n", "config: y.yaml"},
		{"a: 1\n---\nb: 2\n", "more than one YAML document"},
	} {
		if _, err := Parse("y.yaml", []byte(c.yml), nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", c.yml, err, c.want)
		}
	}
	for _, o := range []string{"nokey", "camera=x", "camera.source.deep=1", "camera.nope=1"} {
		if _, err := Load("", []string{o}); err == nil {
			t.Errorf("override %q accepted", o)
		}
	}
}

// TestCameraSectionCheckedByCamera: the camera and queue sections are
// checked by package camera's rules (the ROI among them, which config check
// used to accept in any form), reported under their config paths and lines.
func TestCameraSectionCheckedByCamera(t *testing.T) {
	yml := "camera:\n  source: /dev/video0\n  roi: 1,2,3\n  format: RGB\n  folder:\n    done: \"move:\"\nqueue:\n  drop: sideways\n"
	l, err := Parse("c.yaml", []byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = l.Validate()
	for _, want := range []string{"camera.roi (line 3)", "camera.format (line 4)", "camera.folder.done (line 6)", "queue.drop (line 8)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v; want an error naming %q", err, want)
		}
	}
	l, err = Parse("ok.yaml", []byte("camera:\n  source: dir:/srv/in\n  roi: 0,0,64,32\n  mode: triggered\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	cc, err := l.CameraConfig()
	if err != nil || cc.ROI != (camera.ROI{W: 64, H: 32}) || cc.Mode != camera.Triggered || cc.Queue != 4 || cc.ID != "station-1:camera" {
		t.Errorf("CameraConfig = %+v, %v", cc, err)
	}
}

// TestCameraExecKeys: exec:/pipe: sources' stream format and raw frame
// size reach camera.Config and are checked there, under their paths.
func TestCameraExecKeys(t *testing.T) {
	yml := "camera:\n  source: \"exec:ffmpeg 'unterminated\"\n  exec:\n    format: rgb24\n    height: 480\n  read_timeout: -1s\n"
	l, err := Parse("c.yaml", []byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = l.Validate()
	for _, want := range []string{"camera.source (line 2)", "camera.exec.width", "unterminated single quote", "camera.read_timeout (line 6)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v; want an error naming %q", err, want)
		}
	}
	l, err = Parse("ok.yaml", []byte("camera:\n  source: exec:ffmpeg -f rawvideo -\n  exec:\n    format: gray8\n    width: 640\n    height: 480\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := l.CameraConfig()
	if err != nil || cc.ExecFormat != camera.ExecGray8 || cc.ExecWidth != 640 || cc.ExecHeight != 480 || camera.KindOf(cc.Source) != camera.KindExec || cc.ReadTimeout != 5*time.Second {
		t.Errorf("CameraConfig = %+v, %v", cc, err)
	}
}

func FuzzParse(f *testing.F) {
	ex, _ := os.ReadFile("linesight.example.yaml")
	f.Add(ex, "camera.source=x")
	f.Add([]byte("station: {id: [1, 2]}\n"), "a.b=c")
	f.Add([]byte("&a [*a]"), "")
	f.Fuzz(func(t *testing.T, data []byte, o string) {
		var ov []string
		if o != "" {
			ov = []string{o}
		}
		l, err := Parse("fuzz", data, ov)
		if err != nil {
			return
		}
		_ = l.Validate()
		if _, err := l.YAML(); err != nil {
			t.Fatalf("a parsed config does not encode: %v", err)
		}
	})
}

// TestConsoleSettings: the console is on by default with shifts at 6, 14
// and 22; shifts must be ascending hours; a users file needs the console;
// HTTPS needs a certificate and a key that exist, and HTTP on.
func TestConsoleSettings(t *testing.T) {
	d := Defaults()
	if !d.HTTP.Console || d.HTTP.ConsoleUsersFile != "" || len(d.HTTP.ConsoleShifts) != 3 || d.HTTP.ConsoleShifts[1] != 14 {
		t.Errorf("defaults: %+v", d.HTTP)
	}
	base := []string{"station.id=s", "camera.source=dir:/tmp/in", "model.path=m.tflite", "bank.db=b.db"}
	for _, c := range []struct {
		http string // the http section
		want string // "" = valid
	}{
		{"console_shifts: [0, 8, 16]", ""},
		{"console_shifts: []", ""},
		{"console_shifts: [6, 6]", "http.console_shifts"},
		{"console_shifts: [22, 6]", "http.console_shifts"},
		{"console_shifts: [24]", "http.console_shifts"},
		{"console_users_file: /etc/linesight/users\n  listen: 0.0.0.0:9090", ""},
		{"console_users_file: /etc/linesight/users\n  console: false", "http.console_users_file"},
		{"console_users_file: /etc/linesight/users\n  listen: \"\"", "http.console_users_file"},
		{"tls: {cert: config.go, key: config.go}", ""},
		{"tls: {cert: config.go}", "http.tls.cert"},
		{"tls: {cert: no-such.pem, key: config.go}", "http.tls.cert"},
		{"tls: {cert: config.go, key: config.go}\n  listen: \"\"", "http.tls.cert"},
	} {
		l, err := Parse("test.yaml", []byte("http:\n  "+c.http+"\n"), base)
		if err == nil {
			err = l.Validate()
		}
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%q: %v, want %q", c.http, err, c.want)
		}
	}
}
