package patchcore

import (
	"fmt"
	"testing"

	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/model"
)

// TestAutoTaps: on both shared MobileNetV2 models (the TF1 one has no known
// taps), the automatic taps are the last residual-block outputs at 1/8 and
// 1/16 of the input (28 and 14 rows for 224), found again by their "#index"
// names; DefaultTaps falls back to them.
func TestAutoTaps(t *testing.T) {
	for _, name := range []string{"tf2_mobilenet_v2_1.0_224_ptq.tflite", "mobilenet_v2_1.0_224_quant.tflite"} {
		mf, err := model.Load(testenv.SharedFile(t, "models/mobilenet_v2/"+name))
		if err != nil {
			t.Fatal(err)
		}
		taps, err := AutoTaps(mf.Model)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sg := &mf.Model.Subgraphs[0]
		var desc []string
		for k, tap := range taps {
			i, err := model.FindTensor(mf.Model, tap)
			if err != nil {
				t.Fatalf("%s: %s: %v", name, tap, err)
			}
			sh := sg.Tensors[i].Shape
			if want := int32(28 >> k); len(sh) != 4 || sh[1] != want || sh[2] != want {
				t.Errorf("%s: tap %s has shape %v, want %d x %d", name, tap, sh, want, want)
			}
			desc = append(desc, fmt.Sprintf("%s %q %v", tap, sg.Tensors[i].Name, sh))
		}
		t.Logf("%s: %v", name, desc)
	}
	mf, _ := model.Load(testenv.SharedFile(t, "models/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite"))
	d, err1 := DefaultTaps(mf.Model)
	a, err2 := AutoTaps(mf.Model)
	if err1 != nil || err2 != nil || fmt.Sprint(d) != fmt.Sprint(a) {
		t.Errorf("DefaultTaps on a model without known taps: %v %v, AutoTaps %v %v", d, err1, a, err2)
	}
}
