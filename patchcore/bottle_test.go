package patchcore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linesight/linesight/model/tflite"
)

const shared = "../../shared"

func TestExperiment(t *testing.T) {
	if os.Getenv("LS_EXP") == "" {
		t.Skip("experiment")
	}
	mp := filepath.Join(shared, "models/mobilenet_v2/tf2_mobilenet_v2_1.0_224_ptq.tflite")
	raw, err := os.ReadFile(mp)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tflite.Read(raw)
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := ImageFiles(filepath.Join(shared, "data/mvtec_ad/bottle/train/good"))
	if err != nil {
		t.Fatal(err)
	}
	var taps []string
	if s := os.Getenv("LS_TAPS"); s != "" {
		taps = strings.Split(s, ",")
	}
	b, rep, err := Build(context.Background(), m, Fingerprint(raw), mp, imgs, BuildOptions{Threads: 2, Taps: taps})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("patches %d selected %d embed %v coreset %v calib %v thr %+v", rep.Patches, rep.Selected, rep.EmbedTime, rep.CoresetTime, rep.CalibrateTime, b.Meta.Threshold)
	t.Logf("holdout scores %v", rep.HoldoutScores)
	d, err := Open(b, m, Fingerprint(raw), Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Evaluate(context.Background(), d, filepath.Join(shared, "data/mvtec_ad/bottle"), EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %.4f pixel %.4f aupro %.4f f1 %.3f conf %+v f1opt %+v", res.ImageAUROC, res.PixelAUROC, res.AUPRO, res.F1, res.Confusion, res.F1Optimal)
	for _, im := range res.Images {
		if im.Type == "good" || !im.Fail {
			t.Logf("%s %s %.3f fail=%v", im.Type, filepath.Base(im.Path), im.Score, im.Fail)
		}
	}
}
