package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/daemon"
	"github.com/linesight/linesight/internal/heatmap"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

func init() {
	commands = append(commands,
		command{"inspect", "score images against the active bank: verdict, score, regions, heatmaps", inspectCmd},
		command{"eval", "evaluate a bank on an MVTec AD style folder: AUROC, AUPRO, F1", evalCmd},
	)
}

// openDetector loads bank version v (0: active) from db and its model
// (modelPath, or the path recorded in the bank), checking the fingerprint.
func openDetector(db string, v uint64, modelPath string, threads int) (*patchcore.Detector, error) {
	st, err := openRO(db)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	b, err := st.Get(v)
	if err != nil {
		return nil, err
	}
	if modelPath == "" {
		modelPath = b.Meta.Model.Path
	}
	mf, err := model.Load(modelPath)
	if err != nil {
		return nil, fmt.Errorf("model of bank %d: %w (give --model FILE)", b.Meta.Version, err)
	}
	return patchcore.Open(b, mf, patchcore.Options{Threads: threads})
}

func inspectCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(out)
	db := dbFlag(fs)
	modelPath := fs.String("model", "", "backbone .tflite (default: the path recorded in the bank)")
	ver := fs.Uint64("version", 0, "bank version (default: the active one)")
	outDir := fs.String("out", "", "write a heatmap overlay PNG per image into this folder")
	asJSON := fs.Bool("json", false, "print one JSON object per image")
	threads := fs.Int("threads", runtime.NumCPU(), "threads")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if *db == "" || len(pos) == 0 {
		return errors.New("usage: linesight inspect --db FILE [--model FILE] IMAGE... [--out DIR] [--json]")
	}
	d, err := openDetector(*db, *ver, *modelPath, *threads)
	if err != nil {
		return err
	}
	defer d.Close()
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			return err
		}
	}
	var r patchcore.Result
	failed := 0
	for _, path := range pos {
		img, err := rgb.ReadFile(path)
		if err != nil {
			return err
		}
		if err := d.InspectInto(img, &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		j := daemon.ResultMessage(&r, d.Bank().Meta.Version)
		j.Image = path
		if *outDir != "" {
			j.Overlay = filepath.Join(*outDir, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))+"_overlay.png")
			if err := writeOverlay(j.Overlay, img, &r, d.Bank()); err != nil {
				return err
			}
		}
		if r.Fail {
			failed++
		}
		if *asJSON {
			if err := json.NewEncoder(out).Encode(j); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(out, "%s  %s  score %.4f  normalized %.3f  (threshold %.4f)", path, j.Verdict, r.Score, r.Normalized, r.Threshold)
		for _, g := range r.Regions {
			fmt.Fprintf(out, "  [%d,%d %dx%d peak %.3f]", g.X, g.Y, g.W, g.H, g.Peak)
		}
		fmt.Fprintln(out)
	}
	if !*asJSON && len(pos) > 1 {
		fmt.Fprintf(out, "%d images, %d FAIL\n", len(pos), failed)
	}
	return nil
}

// writeOverlay writes the anomaly map over the frame (patchcore.MapHeatmap)
// at full resolution.
func writeOverlay(path string, img *rgb.Image, r *patchcore.Result, b *bank.Bank) error {
	return writePNG(path, patchcore.RenderMap(img, r, &b.Meta.Threshold, patchcore.MapHeatmap, 0))
}

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

func evalCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(out)
	db := dbFlag(fs)
	data := fs.String("data", "", "MVTec AD style folder (test/<type>/, ground_truth/<type>/)")
	modelPath := fs.String("model", "", "backbone .tflite (default: the path recorded in the bank)")
	ver := fs.Uint64("version", 0, "bank version (default: the active one)")
	asJSON := fs.Bool("json", false, "print the metrics as one JSON object")
	report := fs.String("report", "", "write per-image CSV, ROC curve PNG and overlays into this folder")
	threads := fs.Int("threads", runtime.NumCPU(), "threads")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *db == "" || *data == "" {
		return errors.New("usage: linesight eval --db FILE --data DIR [--json] [--report DIR]")
	}
	d, err := openDetector(*db, *ver, *modelPath, *threads)
	if err != nil {
		return err
	}
	defer d.Close()
	ctx, cancel := signalContext()
	defer cancel()
	var opts patchcore.EvalOptions
	if *report != "" {
		if err := os.MkdirAll(filepath.Join(*report, "overlays"), 0o755); err != nil {
			return err
		}
		opts.Each = func(i, n int, im *patchcore.EvalImage, img *rgb.Image) error {
			r := patchcore.Result{Map: im.Map, Geometry: im.Geometry, Regions: im.Regions}
			name := im.Type + "_" + strings.TrimSuffix(filepath.Base(im.Path), filepath.Ext(im.Path)) + ".png"
			return writeOverlay(filepath.Join(*report, "overlays", name), img, &r, d.Bank())
		}
	}
	res, err := patchcore.Evaluate(ctx, d, *data, opts)
	if err != nil {
		return err
	}
	if *report != "" {
		if err := writeReport(*report, res); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	c := res.Confusion
	fmt.Fprintf(out, "bank version %d on %s: %d test images (%d defective)\n", res.BankVersion, *data, res.NTest, c.TP+c.FN)
	fmt.Fprintf(out, "  image AUROC  %.4f\n", res.ImageAUROC)
	if res.PixelUnavailable != "" {
		fmt.Fprintf(out, "  pixel AUROC and AUPRO unavailable: %s\n", res.PixelUnavailable)
	} else {
		fmt.Fprintf(out, "  pixel AUROC  %.4f   (%d images with known masks)\n", res.PixelAUROC, res.PixelImages)
		fmt.Fprintf(out, "  AUPRO@30%%    %.4f\n", res.AUPRO)
	}
	fmt.Fprintf(out, "  false rejects (good parts failed) against escapes (defects passed), on these images:\n")
	for _, p := range res.Tradeoff {
		fmt.Fprintf(out, "    at most %2.0f%% false rejects: threshold %.4f, %5.1f%% false rejects, %5.1f%% escapes\n", 100*p.TargetFRR, p.Threshold, 100*p.FRR, 100*p.Escape)
	}
	fmt.Fprintf(out, "    the calibrated threshold:    %.4f, %5.1f%% false rejects, %5.1f%% escapes\n", res.Calibrated.Threshold, 100*res.Calibrated.FRR, 100*res.Calibrated.Escape)
	fmt.Fprintf(out, "  at the calibrated threshold %.4f: F1 %.4f\n", res.Threshold, res.F1)
	fmt.Fprintf(out, "               predicted FAIL  predicted PASS\n")
	fmt.Fprintf(out, "    defective  %14d  %14d\n", c.TP, c.FN)
	fmt.Fprintf(out, "    good       %14d  %14d\n", c.FP, c.TN)
	fmt.Fprintf(out, "  F1-optimal threshold on this data: %.4f (F1 %.4f)\n", res.F1Optimal.Threshold, res.F1Optimal.F1)
	if len(res.NoMask) > 0 {
		fmt.Fprintf(out, "  %d defective images have no mask and are left out of the pixel metrics\n", len(res.NoMask))
	}
	return nil
}

func writeReport(dir string, res *patchcore.EvalResult) error {
	f, err := os.Create(filepath.Join(dir, "images.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"image", "type", "defective", "score", "normalized", "verdict", "regions", "has_mask"})
	scores := make([]float64, len(res.Images))
	labels := make([]bool, len(res.Images))
	for i, im := range res.Images {
		scores[i], labels[i] = im.Score, im.Defective
		w.Write([]string{im.Path, im.Type, fmt.Sprint(im.Defective), fmt.Sprintf("%.6f", im.Score), fmt.Sprintf("%.4f", im.Normalized),
			mqtt.VerdictOf(im.Fail), fmt.Sprint(len(im.Regions)), fmt.Sprint(im.Mask != nil)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fpr, tpr := patchcore.ROC(scores, labels)
	plot := heatmap.Plot(480, [][2][]float64{{fpr, tpr}}, []color.RGBA{{220, 30, 30, 255}})
	if err := writePNG(filepath.Join(dir, "roc.png"), plot); err != nil {
		return err
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "metrics.json"), js, 0o644)
}
