package patchcore

import (
	"strings"
	"testing"
)

// TestChooseGeometryFlags: the flags' cases by hand, for 500x1250 strips
// and a 224x224 model: a short side alone keeps the aspect (320 ->
// 320x800, the long side rounded to 16), a WxH of the frames' aspect is
// keep-aspect by itself, keep-aspect with a WxH of another aspect is
// refused (it would be a squash recorded as keep-aspect), and an explicit
// squash is a squash.
func TestChooseGeometryFlags(t *testing.T) {
	strips := [][2]int{{500, 1250}, {500, 1250}, {500, 1250}}
	for _, c := range []struct {
		f       GeometryFlags
		w, h    int
		fit     string
		refused string
	}{
		{GeometryFlags{}, 224, 560, FitKeepAspect, ""},
		{GeometryFlags{Input: "320"}, 320, 800, FitKeepAspect, ""},
		{GeometryFlags{Input: "448", Resize: FitKeepAspect}, 448, 1120, FitKeepAspect, ""},
		{GeometryFlags{Input: "320x800"}, 320, 800, FitKeepAspect, ""},
		{GeometryFlags{Input: "224x224"}, 224, 224, FitSquash, ""},
		{GeometryFlags{Input: "224x224", Resize: FitSquash}, 224, 224, FitSquash, ""},
		{GeometryFlags{Input: "224x224", Resize: FitKeepAspect}, 0, 0, "", "give --input 224x560"},
		{GeometryFlags{Input: "320", Resize: FitSquash}, 0, 0, "", "wants --input WxH"},
		{GeometryFlags{Input: "7"}, 0, 0, "", "short side N"},
		{GeometryFlags{Input: "abc"}, 0, 0, "", "want WxH"},
	} {
		got, err := ChooseGeometry(224, 224, strips, 0, c.f)
		if c.refused != "" {
			if err == nil || !strings.Contains(err.Error(), c.refused) {
				t.Errorf("%+v: %v, %+v; want refused with %q", c.f, err, got, c.refused)
			}
			continue
		}
		if err != nil || got.W != c.w || got.H != c.h || got.Fit != c.fit {
			t.Errorf("%+v: %dx%d %s (%v); want %dx%d %s", c.f, got.W, got.H, got.Fit, err, c.w, c.h, c.fit)
		}
	}
}
