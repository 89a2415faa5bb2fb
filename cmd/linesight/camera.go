package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/linesight/linesight/camera"
	"github.com/linesight/linesight/internal/progress"
)

func init() {
	commands = append(commands,
		command{"camera probe", "open a frame source and print backend, resolution, fps and first-frame timing", cameraProbe},
		command{"capture", "save N frames of a source as PNG files (collecting good parts for a bank)", captureCmd},
	)
}

// sourceFlags are the source options shared by probe and capture: the
// devices' requests, the exec:/pipe: streams' format (camera.exec.* in the
// config) and the region of interest.
type sourceFlags struct {
	c                    *camera.Config
	roi, execSize, scale string
}

func newSourceFlags(fs *flag.FlagSet, c *camera.Config) *sourceFlags {
	sf := &sourceFlags{c: c}
	fs.IntVar(&c.Width, "width", 0, "requested width (devices)")
	fs.IntVar(&c.Height, "height", 0, "requested height (devices)")
	fs.Float64Var(&c.FPS, "fps", 0, "requested frame rate (devices)")
	fs.StringVar(&c.Format, "format", "", "pixel format: MJPG or YUYV (devices)")
	fs.IntVar(&c.Buffers, "buffers", 0, "driver buffer count (0 = driver default)")
	fs.StringVar(&c.ExecFormat, "exec-format", "", "what an exec: or pipe: stream carries: jpeg (default), rgb24, bgr24 or gray8 (camera.exec.format)")
	fs.StringVar(&sf.execSize, "exec-size", "", "raw exec:/pipe: frames' WxH (camera.exec.width and height)")
	fs.StringVar(&sf.scale, "scale", "", "decode exec:/pipe: JPEG frames at 1, 1/2, 1/4 or 1/8 of their size (camera.exec.scale)")
	fs.StringVar(&sf.roi, "roi", "", "region of interest x,y,w,h in frame pixels")
	return sf
}

// finish reads the flags that need parsing into the config.
func (sf *sourceFlags) finish() error {
	var err error
	if sf.c.ROI, err = camera.ParseROI(sf.roi); err != nil {
		return err
	}
	if sf.c.ExecScale, err = camera.ParseScale(sf.scale); err != nil {
		return fmt.Errorf("--scale: %w", err)
	}
	if sf.execSize != "" {
		w, h, ok := strings.Cut(strings.ToLower(sf.execSize), "x")
		if sf.c.ExecWidth, err = strconv.Atoi(w); ok && err == nil {
			sf.c.ExecHeight, err = strconv.Atoi(h)
		}
		if !ok || err != nil || sf.c.ExecWidth <= 0 || sf.c.ExecHeight <= 0 {
			return fmt.Errorf("--exec-size %q: want WxH, e.g. 640x480", sf.execSize)
		}
	}
	return nil
}

func cameraProbe(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("camera probe", flag.ContinueOnError)
	fs.SetOutput(out)
	var cfg camera.Config
	sf := newSourceFlags(fs, &cfg)
	frames := fs.Int("frames", 10, "frames to time")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: linesight camera probe SOURCE [--frames N] [--width W --height H --fps F --format MJPG|YUYV] [--exec-format F --exec-size WxH --scale S] [--roi x,y,w,h]")
	}
	cfg.Source = pos[0]
	if err := sf.finish(); err != nil {
		return err
	}
	cam, err := camera.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cam.Run(ctx) }()
	defer func() { cancel(); <-done }()
	t0 := time.Now()
	var times []time.Duration
	var w, h int
	last := t0
	for i := 0; i < *frames; i++ {
		f, err := cam.Next(ctx)
		if err != nil {
			hl := cam.Health()
			return fmt.Errorf("%s: no frame after %v: %v (last error: %s)", cfg.Source, time.Since(t0).Round(time.Millisecond), err, hl.LastError)
		}
		w, h = f.Image.W, f.Image.H
		times = append(times, f.Time.Sub(last))
		last = f.Time
		f.Release()
	}
	hl := cam.Health()
	fmt.Fprintf(out, "source      %s (%s)\n", cfg.Source, cam.Kind())
	fmt.Fprintf(out, "backend     %s\n", hl.Backend)
	fmt.Fprintf(out, "resolution  %dx%d (frames delivered %dx%d)\n", hl.Width, hl.Height, w, h)
	fmt.Fprintf(out, "fps         %.2f reported\n", hl.FPS)
	fmt.Fprintf(out, "first frame %v after opening\n", times[0].Round(time.Microsecond))
	if len(times) > 1 {
		iv := slices.Clone(times[1:])
		slices.Sort(iv)
		med := iv[len(iv)/2]
		fmt.Fprintf(out, "interval    median %v, max %v over %d frames (%.1f fps measured)\n", med.Round(time.Microsecond), iv[len(iv)-1].Round(time.Microsecond), len(iv), float64(time.Second)/float64(max(med, 1)))
	}
	fmt.Fprintf(out, "dropped     %d, reconnects %d\n", hl.Dropped, hl.Reconnects)
	return nil
}

func captureCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	fs.SetOutput(out)
	var cfg camera.Config
	sf := newSourceFlags(fs, &cfg)
	count := fs.Int("count", 0, "frames to save (required)")
	dir := fs.String("out", "", "folder for the PNG files (default: capture-<UTC time> in the current folder)")
	every := fs.Duration("every", 0, "at most one frame per this interval (e.g. 2s, to vary the parts)")
	prefix := fs.String("prefix", "frame", "file name prefix")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *count <= 0 {
		return errors.New("usage: linesight capture SOURCE --count N [--out DIR] [--every D] [--exec-format F --exec-size WxH --scale S] [--roi x,y,w,h]")
	}
	if *dir == "" {
		*dir = "capture-" + time.Now().UTC().Format("20060102-150405")
	}
	cfg.Source = pos[0]
	if err := sf.finish(); err != nil {
		return err
	}
	if *every > 0 {
		cfg.MaxFPS = float64(time.Second) / float64(*every)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	cam, err := camera.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cam.Run(ctx) }()
	defer func() { cancel(); <-done }()
	bar := progress.New(os.Stderr, "capture")
	for i := 1; i <= *count; i++ {
		f, err := cam.Next(ctx)
		if err != nil {
			return fmt.Errorf("after %d frames: %w (last source error: %s)", i-1, err, cam.Health().LastError)
		}
		path := filepath.Join(*dir, fmt.Sprintf("%s_%05d.png", *prefix, i))
		err = savePNG(path, f)
		f.Release()
		if err != nil {
			return err
		}
		bar.Update(i, *count)
	}
	fmt.Fprintf(out, "saved %d frames to %s\n", *count, *dir)
	return nil
}

func savePNG(path string, f *camera.Frame) error {
	tmp := path + ".tmp"
	w, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := png.Encode(w, f.Image.ToImage()); err != nil {
		w.Close()
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := w.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
