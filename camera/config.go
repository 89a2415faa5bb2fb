// Package camera turns inspection-station frame sources into a stream of
// frames for the daemon, and keeps going when a cable is pulled.
//
// One string selects the source, as line engineers write it:
//
//	/dev/video0, 0             a V4L2 device (path or index)
//	rtsp://..., http(s)://...  a network stream
//	"... ! appsink"            a GStreamer pipeline ending in appsink
//	dir:/srv/incoming          a folder that receives image files, one frame each
//	parts/img_%04d.png         an image sequence (printf pattern)
//	part.png                   a still image (the same frame every time)
//	line.mp4                   a video file
//
// Devices, streams, pipelines and video files go through GoCV (OpenCV);
// folders, sequences and still images use Go's decoders (PNG, JPEG, BMP), so
// they also work in a build with the tag "nogocv" and CGO_ENABLED=0.
//
// Live sources (devices, streams, pipelines) are read as fast as they
// deliver, so that the driver's buffers stay empty, and a reader gets the
// newest frame: never a stale backlog. Recorded sources (files, folders,
// sequences, stills) hand out every frame in order, read on demand and paced
// to MaxFPS. In triggered mode a frame is taken only after Trigger, and is
// one captured after the trigger.
package camera

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Mode says when frames are taken.
type Mode int

const (
	// Continuous hands out frames as they come, paced to MaxFPS.
	Continuous Mode = iota
	// Triggered hands out one frame per Trigger, captured after it.
	Triggered
)

// Kind is the kind of source a string selects.
type Kind string

// Source kinds.
const (
	KindDevice   Kind = "device"
	KindURL      Kind = "url"
	KindPipeline Kind = "gstreamer"
	KindDir      Kind = "dir"
	KindSequence Kind = "sequence"
	KindImage    Kind = "image"
	KindVideo    Kind = "video"
)

// Live reports whether frames arrive on their own (and stale ones should
// be dropped) rather than being read on demand.
func (k Kind) Live() bool { return k == KindDevice || k == KindURL || k == KindPipeline }

// ROI is a region of interest in frame pixels (zero: the whole frame).
type ROI struct{ X, Y, W, H int }

// Empty reports whether r selects the whole frame.
func (r ROI) Empty() bool { return r.W == 0 && r.H == 0 }

// ParseROI parses "x,y,w,h".
func ParseROI(s string) (ROI, error) {
	if s == "" {
		return ROI{}, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return ROI{}, fmt.Errorf("camera: ROI %q: want x,y,w,h", s)
	}
	var v [4]int
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return ROI{}, fmt.Errorf("camera: ROI %q: %q is not a non-negative integer", s, p)
		}
		v[i] = n
	}
	if v[2] == 0 || v[3] == 0 {
		return ROI{}, fmt.Errorf("camera: ROI %q has zero width or height", s)
	}
	return ROI{v[0], v[1], v[2], v[3]}, nil
}

// Config describes a source. Zero values take the defaults noted.
type Config struct {
	Source string // see the package documentation
	ID     string // source id carried by frames (default: Source)
	Mode   Mode
	// MaxFPS paces continuous mode (0: as fast as frames come).
	MaxFPS float64
	// Device options: requested resolution, frame rate, pixel format
	// ("MJPG", "YUYV") and driver buffer count (0: driver default).
	Width, Height int
	FPS           float64
	Format        string
	Buffers       int
	ROI           ROI
	// Folder sources: how long a file's size must stay unchanged before it
	// is read (default 200ms), how often the folder is scanned (default
	// 100ms), and what happens to a file once read: "keep" (default),
	// "delete" or "move:DIR".
	Settle, Poll time.Duration
	Done         string
	// Reconnection backoff: starts at BackoffMin (default 500ms), doubles,
	// capped at BackoffMax (default 30s).
	BackoffMin, BackoffMax time.Duration
	// ReadTimeout declares a live source stalled when no frame came for this
	// long (default 5s).
	ReadTimeout time.Duration
}

func (c *Config) defaults() {
	if c.ID == "" {
		c.ID = c.Source
	}
	if c.Settle == 0 {
		c.Settle = 200 * time.Millisecond
	}
	if c.Poll == 0 {
		c.Poll = 100 * time.Millisecond
	}
	if c.Done == "" {
		c.Done = "keep"
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = 500 * time.Millisecond
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 5 * time.Second
	}
}

// Validate checks the configuration without opening anything.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.Source) == "" {
		return errors.New("camera: no source")
	}
	if c.MaxFPS < 0 || c.FPS < 0 || c.Width < 0 || c.Height < 0 || c.Buffers < 0 {
		return fmt.Errorf("camera: negative fps, size or buffer count")
	}
	switch c.Format {
	case "", "MJPG", "YUYV":
	default:
		return fmt.Errorf("camera: pixel format %q (MJPG or YUYV)", c.Format)
	}
	if c.Done != "" && c.Done != "keep" && c.Done != "delete" && !strings.HasPrefix(c.Done, "move:") {
		return fmt.Errorf("camera: done policy %q (keep, delete or move:DIR)", c.Done)
	}
	if c.Mode != Continuous && c.Mode != Triggered {
		return fmt.Errorf("camera: unknown mode %d", c.Mode)
	}
	return nil
}

var imageExt = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".bmp": true}

// KindOf classifies a source string.
func KindOf(src string) Kind {
	s := strings.TrimSpace(src)
	switch {
	case strings.HasPrefix(s, "dir:"):
		return KindDir
	case strings.Contains(s, "appsink") && strings.Contains(s, "!"):
		return KindPipeline
	case strings.Contains(s, "://"):
		return KindURL
	case strings.HasPrefix(s, "/dev/video"):
		return KindDevice
	}
	if _, err := strconv.Atoi(s); err == nil {
		return KindDevice
	}
	if strings.Contains(s, "%") {
		return KindSequence
	}
	if imageExt[strings.ToLower(filepath.Ext(s))] {
		return KindImage
	}
	if fi, err := os.Stat(s); err == nil && fi.IsDir() {
		return KindDir
	}
	return KindVideo
}
