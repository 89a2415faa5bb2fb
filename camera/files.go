package camera

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/linesight/linesight/internal/rgb"
)

// decodeInto decodes an image file of at most maxPixels into dst, reusing
// dst's buffer.
func decodeInto(path string, maxPixels int, dst *rgb.Image) error {
	img, err := rgb.ReadFileLimit(path, maxPixels)
	if err != nil {
		return err
	}
	dst.CopyFrom(img)
	return nil
}

// dirDriver hands out image files arriving in a folder, oldest first. A file
// is read once its size has not changed for Settle; files that do not
// decode (or are larger than MaxPixels) are skipped with a logged reason.
// A file is known by its name, size and modification time, so a new part
// written under an old name is read again; with a Memory the files read
// are remembered across restarts.
type dirDriver struct {
	cfg  Config
	dir  string
	log  *slog.Logger
	seen map[string]bool // file keys read (or refused)
	size map[string]sizeSeen
	skip func()
}

// fileKey identifies a file's content as the folder camera sees it.
func fileKey(name string, fi os.FileInfo) string {
	return fmt.Sprintf("%s\x00%d\x00%d", name, fi.Size(), fi.ModTime().UnixNano())
}

// read reports whether the file with key was read before (by this camera,
// or by an earlier run, through Memory).
func (d *dirDriver) read(key string) bool {
	if d.seen[key] {
		return true
	}
	if m := d.cfg.Memory; m != nil && m.Seen(key) {
		d.seen[key] = true
		return true
	}
	return false
}

// markRead records that the file with key was read.
func (d *dirDriver) markRead(key string) {
	d.seen[key] = true
	if m := d.cfg.Memory; m != nil {
		if err := m.Remember(key); err != nil {
			d.log.Warn("camera: could not remember a file read; it may be read again after a restart", "err", err)
		}
	}
}

type sizeSeen struct {
	size  int64
	since time.Time
}

func newDirDriver(cfg Config, log *slog.Logger) (driver, error) {
	dir := strings.TrimPrefix(cfg.Source, "dir:")
	return &dirDriver{cfg: cfg, dir: dir, log: log, seen: map[string]bool{}, size: map[string]sizeSeen{}}, nil
}

func (d *dirDriver) Open(context.Context) (Info, error) {
	fi, err := os.Stat(d.dir)
	if err != nil {
		return Info{}, err
	}
	if !fi.IsDir() {
		return Info{}, fmt.Errorf("%s is not a folder", d.dir)
	}
	if dst, ok := strings.CutPrefix(d.cfg.Done, "move:"); ok {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return Info{}, fmt.Errorf("done folder: %w", err)
		}
	}
	return Info{Backend: "folder"}, nil
}

func (d *dirDriver) Close() error { return nil }

func (d *dirDriver) Read(ctx context.Context, dst *rgb.Image) error {
	for {
		path, key, err := d.nextComplete()
		if err != nil {
			return err
		}
		if path != "" {
			err := decodeInto(path, d.cfg.MaxPixels, dst)
			d.markRead(key) // a file refused is not retried either
			delete(d.size, filepath.Base(path))
			if done := d.finish(path); done != nil {
				d.log.Warn("camera: could not apply the done policy", "file", path, "err", done)
			}
			if err != nil {
				// A corrupt or truncated file is not fatal: skip it.
				d.log.Warn("camera: skipping unreadable image", "file", path, "err", err)
				if d.skip != nil {
					d.skip()
				}
				continue
			}
			return nil
		}
		t := time.NewTimer(d.cfg.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// nextComplete returns the oldest unread image file whose size has been
// stable for Settle, and its key, or "" if none is ready yet.
func (d *dirDriver) nextComplete() (string, string, error) {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return "", "", err
	}
	type cand struct {
		name, key string
		mod       time.Time
	}
	var ready []cand
	now := time.Now()
	present := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !imageExt[strings.ToLower(filepath.Ext(name))] {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // vanished between ReadDir and Info
		}
		key := fileKey(name, fi)
		if d.read(key) {
			continue
		}
		present[name] = true
		s, ok := d.size[name]
		if !ok || s.size != fi.Size() {
			d.size[name] = sizeSeen{fi.Size(), now}
			continue
		}
		if now.Sub(s.since) >= d.cfg.Settle && now.Sub(fi.ModTime()) >= d.cfg.Settle {
			ready = append(ready, cand{name, key, fi.ModTime()})
		}
	}
	for name := range d.size {
		if !present[name] {
			delete(d.size, name)
		}
	}
	if len(ready) == 0 {
		return "", "", nil
	}
	sort.Slice(ready, func(i, j int) bool {
		if !ready[i].mod.Equal(ready[j].mod) {
			return ready[i].mod.Before(ready[j].mod)
		}
		return ready[i].name < ready[j].name
	})
	return filepath.Join(d.dir, ready[0].name), ready[0].key, nil
}

// finish applies the done policy to a file that was read.
func (d *dirDriver) finish(path string) error {
	switch {
	case d.cfg.Done == "delete":
		return os.Remove(path)
	case strings.HasPrefix(d.cfg.Done, "move:"):
		return os.Rename(path, filepath.Join(strings.TrimPrefix(d.cfg.Done, "move:"), filepath.Base(path)))
	}
	return nil
}

// sequenceDriver reads img_%04d.png style sequences, from index 0 (or 1 if
// 0 is missing) until the first missing index, which ends the source.
type sequenceDriver struct {
	pattern   string
	maxPixels int
	next      int
	first     bool
}

func newSequenceDriver(cfg Config, _ *slog.Logger) (driver, error) {
	return &sequenceDriver{pattern: cfg.Source, maxPixels: cfg.MaxPixels}, nil
}

func (d *sequenceDriver) Open(context.Context) (Info, error) {
	for _, start := range []int{0, 1} {
		p := fmt.Sprintf(d.pattern, start)
		if _, err := os.Stat(p); err == nil {
			d.next = start
			img, err := rgb.ReadFileLimit(p, d.maxPixels)
			if err != nil {
				return Info{}, err
			}
			return Info{Backend: "image-sequence", Width: img.W, Height: img.H}, nil
		}
	}
	return Info{}, fmt.Errorf("no file matches %s at index 0 or 1: %w", d.pattern, os.ErrNotExist)
}

func (d *sequenceDriver) Close() error { return nil }

func (d *sequenceDriver) Read(_ context.Context, dst *rgb.Image) error {
	p := fmt.Sprintf(d.pattern, d.next)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return io.EOF
	}
	d.next++
	return decodeInto(p, d.maxPixels, dst)
}

// imageDriver is a still image: the same frame every time (demos, tests).
type imageDriver struct {
	path      string
	maxPixels int
	img       *rgb.Image
}

func newImageDriver(cfg Config, _ *slog.Logger) (driver, error) {
	return &imageDriver{path: cfg.Source, maxPixels: cfg.MaxPixels}, nil
}

func (d *imageDriver) Open(context.Context) (Info, error) {
	img, err := rgb.ReadFileLimit(d.path, d.maxPixels)
	if err != nil {
		return Info{}, err
	}
	d.img = img
	return Info{Backend: "image", Width: img.W, Height: img.H}, nil
}

func (d *imageDriver) Close() error { return nil }

func (d *imageDriver) Read(_ context.Context, dst *rgb.Image) error {
	dst.CopyFrom(d.img)
	return nil
}
