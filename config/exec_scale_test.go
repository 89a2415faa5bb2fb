package config

import (
	"strings"
	"testing"
)

// TestCameraExecScale: camera.exec.scale reaches camera.Config.ExecScale
// as the divisor, and a bad value or a scale on a source that cannot take
// one is reported under camera.exec.scale.
func TestCameraExecScale(t *testing.T) {
	for yml, want := range map[string]int{
		"camera:\n  source: exec:cat\n":                             1,
		"camera:\n  source: exec:cat\n  exec:\n    scale: 1\n":      1,
		"camera:\n  source: exec:cat\n  exec:\n    scale: 1/2\n":    2,
		"camera:\n  source: pipe:/run/c\n  exec:\n    scale: 1/8\n": 8,
	} {
		l, err := Parse("ok.yaml", []byte(yml), nil)
		if err != nil {
			t.Fatal(err)
		}
		cc, err := l.CameraConfig()
		if err != nil || cc.ExecScale != want {
			t.Errorf("%q: ExecScale %d, %v; want %d", yml, cc.ExecScale, err, want)
		}
	}
	for yml, msg := range map[string]string{
		"camera:\n  source: exec:cat\n  exec:\n    scale: 1/3\n":                                                 `"1/3" is not 1, 1/2, 1/4 or 1/8`,
		"camera:\n  source: exec:cat\n  exec:\n    scale: 0.5\n":                                                 `"0.5" is not 1, 1/2, 1/4 or 1/8`,
		"camera:\n  source: dir:/srv/in\n  exec:\n    scale: 1/4\n":                                              "not dir sources",
		"camera:\n  source: exec:cat\n  exec:\n    scale: 1/2\n    format: gray8\n    width: 8\n    height: 8\n": "not raw gray8 frames",
	} {
		l, err := Parse("bad.yaml", []byte(yml), nil)
		if err != nil {
			t.Fatal(err)
		}
		err = l.Validate()
		if err == nil || !strings.Contains(err.Error(), "camera.exec.scale") || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: Validate = %v; want camera.exec.scale: %s", yml, err, msg)
		}
	}
}
