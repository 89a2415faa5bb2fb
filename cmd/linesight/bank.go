package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/progress"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/internal/trust"
	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/patchcore"
)

func init() {
	commands = append(commands,
		command{"bank build", "build a memory bank from good images, calibrate its threshold, store and activate it", bankBuild},
		command{"bank append", "grow a bank with more good images: add the patches it does not cover, recalibrate, store (and activate) a new version", bankAppend},
		command{"bank list", "list the bank versions in a database", bankList},
		command{"bank info", "show a bank version's metadata (default: the active one)", bankInfo},
		command{"bank activate", "make a bank version active", bankActivate},
		command{"bank rollback", "re-activate the previously active version", bankRollback},
		command{"bank export", "write a bank version to a single bundle file", bankExport},
		command{"bank import", "store a bundle file as a new version", bankImport},
		command{"bank check", "check a bank database file through and through; --move-aside renames a damaged one", bankCheck},
		command{"bank history", "the audit log: every bank change (built, imported, pushed, activated, rolled back, refused), who and why", bankHistory},
	)
}

// signalContext is cancelled by SIGINT/SIGTERM so that long jobs stop cleanly.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func bankBuild(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bank build", flag.ContinueOnError)
	fs.SetOutput(out)
	modelPath := fs.String("model", "", "backbone .tflite file (required)")
	images := fs.String("images", "", "folder of good images (required)")
	db := fs.String("db", "", "bank database file (required; created if missing)")
	var o patchcore.BuildOptions
	fs.Float64Var(&o.Ratio, "ratio", 0.1, "share of patches kept by the coreset")
	fs.IntVar(&o.Max, "max", 0, "cap on the coreset size (0 = none)")
	fs.IntVar(&o.Folds, "folds", patchcore.DefaultFolds, "out-of-fold calibration: score each of K folds of the good images against a bank of the others (at most the number of images); 0 = hold out a share instead (--holdout)")
	fs.Float64Var(&o.Holdout, "holdout", 0.1, "with --folds 0: share of good images held out to calibrate the threshold")
	taps := fs.String("taps", "", "comma-separated feature-map tensors (names, or #index from `model info --tensors`), finest first; auto picks them by stride (default: the model's known taps, else auto)")
	seed := fs.Uint64("seed", 0, "seed for the folds (or holdout split), coreset start and projections")
	fs.IntVar(&o.Threads, "threads", runtime.NumCPU(), "threads")
	fs.Float64Var(&o.Crop, "crop", 0, "centre-crop fraction of the shorter side before resizing (0 = whole frame)")
	fs.StringVar(&o.Rule, "rule", patchcore.RuleTail, "threshold rule: tail (set by --target-frr), max-margin, quantile or sigma")
	fs.Float64Var(&o.Param, "param", 0, "parameter of the max-margin, quantile or sigma rule (default: 1.1, 0.99 or 4 by rule)")
	targetFRR := fs.Float64("target-frr", 0, "tail rule: the share of good parts allowed to fail, in (0, 0.5) (default 0.01)")
	fs.IntVar(&o.CoresetDim, "coreset-dim", 128, "random projection dimension for coreset selection")
	fs.IntVar(&o.Project, "project", 0, "project patch vectors to this many dimensions (0 = keep)")
	fs.StringVar(&o.Image, "image-score", "eq7", "image score: eq7 (re-weighted, b neighbours) or max")
	fs.IntVar(&o.B, "b", 9, "neighbours for the Eq. 7 re-weighting")
	fs.StringVar(&o.Note, "note", "", "free text stored with the bank")
	noActivate := fs.Bool("no-activate", false, "store without activating")
	defects := fs.String("defects", "", "folder of labelled defective images: also report the F1-optimal threshold")
	var g geometryFlags
	fs.StringVar(&g.input, "input", "", "model input WxH the frames are resized to (e.g. 224x560 or 448x448), or N: short side N with the frames' aspect (e.g. 320) (default: chosen from the good images, see --resize)")
	fs.StringVar(&g.resize, "resize", "", "squash (the model's own input whatever the frames' aspect, as published) or keep-aspect (a non-square input with the frames' aspect, short side at the model's size); default: keep-aspect unless the frames are near square")
	fs.StringVar(&g.tiles, "tiles", "", "score frames as overlapping tiles of the model input: the canvas WxH the frame is resized to (e.g. 1200x800), or off (default: tiles only for frames whose short side is more than 6x the model's)")
	fs.StringVar(&g.roi, "roi", "", "region of interest in frame pixels: a text file of polygons (one per line, \"x,y x,y x,y ...\") or a mask image (PNG/BMP/JPEG, the frames' size, white = inspect)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *modelPath == "" || *images == "" || *db == "" {
		return errors.New("usage: linesight bank build --model FILE --images DIR --db FILE [--target-frr 0.01] [--folds 5] [--ratio 0.1] [--taps a,b] [--seed S]")
	}
	if err := thresholdFlags(&o, fs, *targetFRR); err != nil {
		return err
	}
	o.Seed = *seed
	if *taps != "" && *taps != "auto" {
		o.Taps = strings.Split(*taps, ",")
	}
	mf, err := model.Load(*modelPath)
	if err != nil {
		return err
	}
	if *taps == "auto" {
		if o.Taps, err = patchcore.AutoTaps(mf.Model); err != nil {
			return fmt.Errorf("bank build --taps auto: %w", err)
		}
	}
	files, err := patchcore.ImageFiles(*images)
	if err != nil {
		return err
	}
	if err := g.apply(&o.Recipe, mf, files, out); err != nil {
		return fmt.Errorf("bank build: %w", err)
	}
	if *defects != "" {
		if o.Defects, err = patchcore.ImageFiles(*defects); err != nil {
			return err
		}
	}
	// Try the store first: a locked or unwritable database should fail
	// before minutes of work, not after. It is not held meanwhile: a
	// station serving from it, or `bank list`, must go on working.
	st, err := bank.OpenStore(*db, false)
	if err != nil {
		return err
	}
	st.Close()

	ctx, cancel := signalContext()
	defer cancel()
	o.Progress = stageBars()
	start := time.Now()
	b, rep, err := patchcore.Build(ctx, mf, files, o)
	if err != nil {
		return err
	}
	e := &bank.AuditEntry{Action: "build", Who: "cli:" + whoami(), Result: bank.AuditOK,
		Detail: fmt.Sprintf("%d images from %s", len(files), *images)}
	v, err := applyChange(*db, bank.Change{Put: b, Activate: !*noActivate, Audit: e})
	if err != nil {
		return err
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	mt := &b.Meta
	fmt.Fprintf(out, "bank version %d stored in %s%s\n", v, *db, activated(!*noActivate))
	if rep.Folds > 0 {
		fmt.Fprintf(out, "  images     %d for the bank; threshold from %d out-of-fold scores (%d folds)\n", len(rep.Train), len(rep.HoldoutScores), rep.Folds)
	} else {
		fmt.Fprintf(out, "  images     %d for the bank, %d held out for the threshold\n", len(rep.Train), len(rep.Holdout))
	}
	fmt.Fprintf(out, "  patches    %d (%dx%d grid, %d-d, taps %s)\n", rep.Patches, mt.Embed.GridW, mt.Embed.GridH, mt.Dim, strings.Join(mt.Model.Taps, ", "))
	fmt.Fprintf(out, "  bank       %d vectors (%.1f%%), %.1f MiB int8, scale %.4g\n", rep.Selected, 100*float64(rep.Selected)/float64(rep.Patches), float64(len(b.Vectors))/(1<<20), mt.Scale)
	if err := printCost(out, mf, mt); err != nil {
		return err
	}
	printThreshold(out, &mt.Threshold)
	if f := mt.Threshold.F1; f != nil {
		fmt.Fprintf(out, "  F1-optimal threshold %.4f (F1 %.4f over %d calibration good and %d defective images; not in force)\n", f.Value, f.F1, len(rep.HoldoutScores), f.Defects)
	}
	fmt.Fprintf(out, "  time       %.1fs (embed %.1fs, folds %.1fs, coreset %.1fs, calibrate %.1fs), peak memory %d MiB\n", time.Since(start).Seconds(),
		rep.EmbedTime.Seconds(), rep.FoldTime.Seconds(), rep.CoresetTime.Seconds(), rep.CalibrateTime.Seconds(), ru.Maxrss/1024)
	return nil
}

func bankAppend(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bank append", flag.ContinueOnError)
	fs.SetOutput(out)
	db := fs.String("db", "", "bank database file (required)")
	images := fs.String("images", "", "folder of good images to append (required)")
	modelPath := fs.String("model", "", "backbone .tflite file (default: the path the bank recorded; its SHA-256 must match)")
	version := fs.Uint64("version", 0, "bank version to grow (default: the active one)")
	var o patchcore.AppendOptions
	fs.IntVar(&o.Threads, "threads", runtime.NumCPU(), "threads")
	fs.StringVar(&o.Note, "note", "", "free text stored with the new version (default: the bank's)")
	noActivate := fs.Bool("no-activate", false, "store without activating")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *db == "" || *images == "" {
		return errors.New("usage: linesight bank append --db FILE --images DIR [--model FILE] [--version N] [--no-activate] [--note TEXT]")
	}
	files, err := patchcore.ImageFiles(*images)
	if err != nil {
		return err
	}
	st, err := openRO(*db)
	if err != nil {
		return err
	}
	v := *version
	if v == 0 {
		if v, err = st.ActiveVersion(); err != nil {
			st.Close()
			return err
		}
	}
	b, err := st.Get(v)
	st.Close() // not held during the work: a serving station goes on
	if err != nil {
		return err
	}
	path := *modelPath
	if path == "" {
		path = b.Meta.Model.Path
	}
	mf, err := model.Load(path)
	if err != nil {
		return fmt.Errorf("bank append: model of bank %d: %w (give it with --model)", v, err)
	}
	if mf.SHA256 != b.Meta.Model.SHA256 {
		return fmt.Errorf("bank append: %s has SHA-256 %s, bank %d was built with %s", path, mf.SHA256[:12], v, b.Meta.Model.SHA256[:12])
	}

	ctx, cancel := signalContext()
	defer cancel()
	o.Progress = stageBars()
	start := time.Now()
	nb, rep, err := patchcore.Append(ctx, mf, b, files, o)
	if err != nil {
		return err
	}
	e := &bank.AuditEntry{Action: "append", Who: "cli:" + whoami(), Result: bank.AuditOK,
		Detail: fmt.Sprintf("%d images from %s appended to version %d: %d patches added", len(files), *images, v, rep.Added)}
	nv, err := applyChange(*db, bank.Change{Put: nb, Activate: !*noActivate, Audit: e})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "bank version %d (version %d + %d images) stored in %s%s\n", nv, v, len(files), *db, activated(!*noActivate))
	radius := fmt.Sprintf("%.4f", rep.Radius)
	if rep.RadiusFallback {
		radius += " (estimated: the bank did not record one)"
	}
	fmt.Fprintf(out, "  patches    %d added of %d (coverage radius %s)\n", rep.Added, rep.Patches, radius)
	fmt.Fprintf(out, "  bank       %d -> %d vectors\n", b.Meta.Count, nb.Meta.Count)
	kept := ""
	if !rep.Recalibrated {
		kept = " (kept: the bank has no calibration scores to recalibrate with)"
	}
	fmt.Fprintf(out, "  recalibrated %.4f -> %.4f%s\n", rep.OldThreshold, rep.NewThreshold, kept)
	printThreshold(out, &nb.Meta.Threshold)
	fmt.Fprintf(out, "  scores     image: before, after, leave-one-out\n")
	for i, f := range files {
		fmt.Fprintf(out, "    %s: %.4f, %.4f, %.4f\n", filepath.Base(f), rep.Before[i], rep.After[i], rep.LeaveOneOut[i])
	}
	fmt.Fprintf(out, "  time       %.1fs\n", time.Since(start).Seconds())
	return nil
}

// stageBars reports progress on stderr with one bar per stage.
func stageBars() func(stage string, done, total int) {
	bars := map[string]*progress.Bar{}
	return func(stage string, done, total int) {
		b := bars[stage]
		if b == nil {
			b = progress.New(os.Stderr, stage)
			bars[stage] = b
		}
		b.Update(done, total)
	}
}

// thresholdFlags applies --folds 0 and --target-frr to o: the target is
// the tail rule's parameter, and an error with any other rule.
func thresholdFlags(o *patchcore.BuildOptions, fs *flag.FlagSet, targetFRR float64) error {
	if o.Folds == 0 {
		o.Folds = patchcore.SingleHoldout
	} else if o.Folds < 2 {
		return fmt.Errorf("bank build: --folds %d: use at least 2 folds, or 0 for a single hold-out (--holdout)", o.Folds)
	}
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "target-frr" })
	if !set {
		if o.Rule == patchcore.RuleTail && o.Param != 0 {
			return errors.New("bank build: the tail rule takes its target with --target-frr, not --param")
		}
		return nil
	}
	if o.Rule != patchcore.RuleTail {
		return fmt.Errorf("bank build: --target-frr sets the tail rule's target false-reject rate; --rule %s takes --param instead", o.Rule)
	}
	if !(targetFRR > 0 && targetFRR < 0.5) {
		return fmt.Errorf("bank build: --target-frr %v outside (0, 0.5)", targetFRR)
	}
	o.Param = targetFRR
	return nil
}

// printThreshold writes a bank's threshold and how it was calibrated.
func printThreshold(out io.Writer, th *bank.Threshold) {
	rule := fmt.Sprintf("%s %g", th.Rule, th.Param)
	if th.Rule == patchcore.RuleTail {
		rule = fmt.Sprintf("tail, target false-reject rate %.4g", th.Target)
	}
	fmt.Fprintf(out, "  threshold  %.4f (%s; expected false-reject rate %.4g), pixel %.4f\n", th.Value, rule, th.ExpectedFRR, th.Pixel)
	from := "held-out scores"
	if th.Folds > 0 {
		from = fmt.Sprintf("out-of-fold scores, %d folds", th.Folds)
	}
	fmt.Fprintf(out, "  calibrated on %d %s: %.4f..%.4f, mean %.4f\n", th.Stats.N, from, th.Stats.Min, th.Stats.Max, th.Stats.Mean)
}

// applyChange opens the database for writing only for c: storing and
// activating in one transaction, so a crash leaves the old state or the new
// bank active, never a new bank stored but inactive. Minutes of work before
// it (a build) do not hold the database: a serving station goes on.
func applyChange(db string, c bank.Change) (uint64, error) {
	st, err := bank.OpenStore(db, false)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return st.Apply(c)
}

// activated is " and activated" when a stored bank was activated.
func activated(yes bool) string {
	if yes {
		return " and activated"
	}
	return ""
}

func dbFlag(fs *flag.FlagSet) *string {
	return fs.String("db", "", "bank database file (required)")
}

func openRO(db string) (*bank.Store, error) {
	if db == "" {
		return nil, errors.New("--db FILE is required")
	}
	if _, err := os.Stat(db); err != nil {
		return nil, fmt.Errorf("bank database: %w", err)
	}
	return bank.OpenStore(db, true)
}

func bankList(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bank list", flag.ContinueOnError)
	fs.SetOutput(out)
	db := dbFlag(fs)
	asJSON := fs.Bool("json", false, "print the metadata as JSON")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	st, err := openRO(*db)
	if err != nil {
		return err
	}
	defer st.Close()
	metas, listErr := st.List()
	active, _ := st.ActiveVersion()
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", " ")
		if err := enc.Encode(struct {
			Active   uint64      `json:"active"`
			Versions []bank.Meta `json:"versions"`
		}{active, metas}); err != nil {
			return err
		}
		return listErr
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tVERSION\tCREATED\tVECTORS\tTHRESHOLD\tIMAGES\tMODEL\tNOTE")
	for _, m := range metas {
		mark := ""
		if m.Version == active {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%dx%d\t%.4f\t%d+%d\t%s\t%s\n", mark, m.Version, m.Created.Format(time.RFC3339), m.Count, m.Dim,
			m.Threshold.Value, m.Images.Train, m.Images.Holdout, m.Model.SHA256[:12], m.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(metas) == 0 {
		fmt.Fprintln(out, "(no banks)")
	}
	return listErr
}

// versionArg parses an optional VERSION positional; 0 means the active one.
func versionArg(st *bank.Store, pos []string) (uint64, error) {
	if len(pos) == 0 {
		return st.ActiveVersion()
	}
	v, err := strconv.ParseUint(pos[0], 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("version %q is not a positive number", pos[0])
	}
	return v, nil
}

func bankInfo(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bank info", flag.ContinueOnError)
	fs.SetOutput(out)
	db := dbFlag(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	st, err := openRO(*db)
	if err != nil {
		return err
	}
	defer st.Close()
	v, err := versionArg(st, pos)
	if err != nil {
		return err
	}
	b, err := st.Get(v)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(b.Meta)
}

func bankActivate(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bank activate", flag.ContinueOnError)
	fs.SetOutput(out)
	db := dbFlag(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if *db == "" || len(pos) != 1 {
		return errors.New("usage: linesight bank activate --db FILE VERSION")
	}
	st, err := bank.OpenStore(*db, false)
	if err != nil {
		return err
	}
	defer st.Close()
	v, err := versionArg(st, pos)
	if err != nil {
		return err
	}
	if err := st.ActivateAudited(v, &bank.AuditEntry{Action: "activate", Who: "cli:" + whoami(), Result: bank.AuditOK}); err != nil {
		return err
	}
	fmt.Fprintf(out, "version %d is active\n", v)
	return nil
}

func bankRollback(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bank rollback", flag.ContinueOnError)
	fs.SetOutput(out)
	db := dbFlag(fs)
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *db == "" {
		return errors.New("usage: linesight bank rollback --db FILE")
	}
	st, err := bank.OpenStore(*db, false)
	if err != nil {
		return err
	}
	defer st.Close()
	v, err := st.RollbackAudited(&bank.AuditEntry{Action: "rollback", Who: "cli:" + whoami(), Result: bank.AuditOK})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "rolled back: version %d is active\n", v)
	return nil
}

func bankExport(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bank export", flag.ContinueOnError)
	fs.SetOutput(out)
	db := dbFlag(fs)
	ver := fs.Uint64("version", 0, "version to export (default: the active one)")
	outPath := fs.String("out", "", "bundle file to write (required)")
	sign := fs.String("sign", "", "sign the manifest with this private key (`linesight keys generate`)")
	withModel := fs.Bool("with-model", false, "carry the backbone inside, so a station can take model and bank as one unit")
	modelPath := fs.String("model", "", "the backbone for --with-model (default: the path recorded in the bank)")
	serial := fs.Uint64("serial", 0, "bundle serial (default: the time in milliseconds since 1970, which grows with every export)")
	creator := fs.String("creator", whoami(), "who made the bundle, recorded in its manifest")
	note := fs.String("note", "", "free text for the manifest")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if *outPath == "" && len(pos) == 1 { // the form before --out
		*outPath = pos[0]
	} else if len(pos) != 0 || *outPath == "" {
		return errors.New("usage: linesight bank export --db FILE [--version V] --out FILE [--sign KEYFILE] [--with-model]")
	}
	var signer *trust.Signer
	if *sign != "" {
		if signer, err = trust.LoadSigner(*sign); err != nil {
			return err
		}
	}
	st, err := openRO(*db)
	if err != nil {
		return err
	}
	defer st.Close()
	b, err := st.Get(*ver)
	if err != nil {
		return err
	}
	var model []byte
	if *withModel {
		p := *modelPath
		if p == "" {
			p = b.Meta.Model.Path
		}
		if model, err = os.ReadFile(p); err != nil {
			return fmt.Errorf("--with-model: %w (give --model FILE)", err)
		}
	}
	m := bank.Manifest{Serial: *serial, Creator: *creator, Created: time.Now().UTC().Truncate(time.Millisecond), Note: *note}
	if m.Serial == 0 {
		m.Serial = uint64(time.Now().UnixMilli())
	}
	// Write to a temporary file and rename, so that a bundle file is
	// complete whenever it exists.
	tmp, err := os.CreateTemp(filepath.Dir(*outPath), ".bank-export-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := bank.WriteBundle(tmp, b, model, m, signer); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *outPath); err != nil {
		return err
	}
	fi, _ := os.Stat(*outPath)
	how := "unsigned"
	if signer != nil {
		how = "signed by key " + signer.ID
	}
	if model != nil {
		how += ", with its backbone"
	}
	fmt.Fprintf(out, "version %d exported to %s (%d bytes, serial %d, %s)\n", b.Meta.Version, *outPath, fi.Size(), m.Serial, how)
	return nil
}

func bankImport(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bank import", flag.ContinueOnError)
	fs.SetOutput(out)
	db := dbFlag(fs)
	activate := fs.Bool("activate", false, "activate the imported version")
	trusted := fs.String("trusted-keys", "", "accept only bundles signed by one of these public keys")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if *db == "" || len(pos) != 1 {
		return errors.New("usage: linesight bank import --db FILE [--activate] [--trusted-keys FILE] BUNDLE")
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	bd, err := bank.ReadBundle(f)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if *trusted != "" {
		keys, err := trust.LoadKeys(*trusted)
		if err != nil {
			return err
		}
		if err := bd.Verify(keys); err != nil {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
	}
	b := bd.Bank
	b.Meta.Origin = &bank.Origin{Version: b.Meta.Version, Created: b.Meta.Created, File: filepath.Base(pos[0])}
	st, err := bank.OpenStore(*db, false)
	if err != nil {
		return err
	}
	defer st.Close()
	if bd.Model != nil {
		p, err := model.Store(filepath.Join(filepath.Dir(*db), "models"), bd.Model)
		if err != nil {
			return err
		}
		b.Meta.Model.Path = p
	}
	msg := "stored"
	if *activate {
		msg = "stored and activated"
	}
	e := &bank.AuditEntry{Action: "import", Who: "cli:" + whoami(), Serial: bd.Manifest.Serial, Result: bank.AuditOK,
		Detail: fmt.Sprintf("%s (%s)", filepath.Base(pos[0]), msg)}
	v, err := st.Apply(bank.Change{Put: b, Activate: *activate, Audit: e})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s imported as version %d (%s; exported version %d)\n", pos[0], v, msg, b.Meta.Origin.Version)
	return nil
}

func bankHistory(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bank history", flag.ContinueOnError)
	fs.SetOutput(out)
	db := dbFlag(fs)
	n := fs.Int("n", 50, "show the last N entries (0: all)")
	asJSON := fs.Bool("json", false, "one JSON object per entry")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	st, err := openRO(*db)
	if err != nil {
		return err
	}
	defer st.Close()
	log, logErr := st.AuditLog(*n)
	if *asJSON {
		enc := json.NewEncoder(out)
		for _, e := range log {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return logErr
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tWHO\tVERSION\tSERIAL\tRESULT\tREASON")
	for _, e := range log {
		ver, ser := "-", "-"
		if e.Version > 0 {
			ver = strconv.FormatUint(e.Version, 10)
		}
		if e.Serial > 0 {
			ser = strconv.FormatUint(e.Serial, 10)
		}
		reason := e.Reason
		if reason == "" {
			reason = e.Detail
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), e.Action, e.Who, ver, ser, e.Result, reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(log) == 0 {
		fmt.Fprintln(out, "(no changes recorded)")
	}
	return logErr
}

func bankCheck(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bank check", flag.ContinueOnError)
	fs.SetOutput(out)
	db := dbFlag(fs)
	moveAside := fs.Bool("move-aside", false, "rename a damaged file to <db>.damaged-<time> so that a new one can be made")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	st, err := openRO(*db)
	if err == nil {
		err = st.Check()
		st.Close()
	}
	if err == nil {
		fmt.Fprintf(out, "%s: ok\n", *db)
		return nil
	}
	if !errors.Is(err, bank.ErrCorrupt) || !*moveAside {
		return err
	}
	to, merr := bank.MoveAside(*db)
	if merr != nil {
		return errors.Join(err, merr)
	}
	fmt.Fprintf(out, "%s is damaged (%v); moved aside to %s\n", *db, err, to)
	return nil
}

// geometryFlags are bank build's --input, --resize and --roi.
type geometryFlags struct{ input, resize, tiles, roi string }

// apply chooses the model input for the good images files (their sizes,
// read from the headers) and the flags, rasterises the region of interest,
// writes both into r and prints the choice and why.
func (g *geometryFlags) apply(r *patchcore.Recipe, mf *model.File, files []string, out io.Writer) error {
	sw, sh, err := patchcore.StoredInput(mf.Model)
	if err != nil {
		return err
	}
	sizes := make([][2]int, len(files))
	for i, p := range files {
		w, h, err := rgb.ReadSize(p)
		if err != nil {
			return err
		}
		sizes[i] = [2]int{w, h}
	}
	fw, fh := patchcore.MedianSize(sizes)
	odd := 0
	for _, s := range sizes {
		if s[0] != fw || s[1] != fh {
			odd++
		}
	}
	if odd > 0 {
		fmt.Fprintf(out, "warning: %d of %d good images are not %dx%d (the median size); each is resized to the same model input\n", odd, len(files), fw, fh)
	}
	c, err := patchcore.ChooseGeometry(sw, sh, sizes, r.Crop, patchcore.GeometryFlags{Input: g.input, Resize: g.resize, Tiles: g.tiles})
	if err != nil {
		return err
	}
	r.InputW, r.InputH, r.Fit, r.Why, r.Tiles = c.W, c.H, c.Fit, c.Why, c.Tiles
	fmt.Fprintf(out, "geometry   %dx%d model input (%s); %s\n", c.W, c.H, c.Fit, c.Why)
	if g.roi == "" {
		return nil
	}
	// With tiles the region is drawn on the canvas the tiles cut.
	rw, rh := patchcore.ROISize(c.W, c.H, c.Tiles)
	switch strings.ToLower(filepath.Ext(g.roi)) {
	case ".png", ".bmp", ".jpg", ".jpeg":
		m, err := rgb.ReadFile(g.roi)
		if err != nil {
			return fmt.Errorf("--roi: %w", err)
		}
		if m.W != fw || m.H != fh {
			return fmt.Errorf("--roi: mask %s is %dx%d, the good images %dx%d", g.roi, m.W, m.H, fw, fh)
		}
		r.ROI, err = patchcore.ROIFromMask(m, r.Crop, rw, rh)
		if err != nil {
			return err
		}
	default:
		data, err := os.ReadFile(g.roi)
		if err != nil {
			return fmt.Errorf("--roi: %w", err)
		}
		if len(data) > 1<<20 {
			return fmt.Errorf("--roi: %s is larger than 1 MiB", g.roi)
		}
		polys, err := patchcore.ParsePolygons(string(data))
		if err != nil {
			return fmt.Errorf("--roi %s: %w", g.roi, err)
		}
		if r.ROI, err = patchcore.ROIFromPolygons(polys, fw, fh, r.Crop, rw, rh); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "roi        %s\n", r.ROI.Source)
	return nil
}

// printCost prints what one frame costs with bank metadata mt: the
// backbone's multiply-accumulates at the bank's input, the patches searched
// and the search's multiply-accumulates against the bank.
func printCost(out io.Writer, mf *model.File, mt *bank.Meta) error {
	c, err := patchcore.CostOf(mf.Model, mt)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  cost       %s\n", c.Line(mt.Count, mt.Dim))
	return nil
}
