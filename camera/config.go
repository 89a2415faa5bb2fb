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
//	exec:COMMAND ARGS...       a command writing JPEG (or raw) frames to stdout
//	pipe:/run/cam.fifo         a named pipe receiving the same
//
// Devices, streams, pipelines and video files go through GoCV (OpenCV);
// folders, sequences, still images, commands and named pipes use Go's
// decoders (PNG, JPEG, BMP), so they also work in a build with the tag
// "nogocv" and CGO_ENABLED=0.
//
// A command (exec:) is started without a shell (its arguments are split as
// a shell would, quotes included) in its own process group; its standard
// output is a stream of concatenated JPEG images (gst-launch-1.0 ... !
// jpegenc ! fdsink fd=1, ffmpeg ... -f mjpeg -, rpicam-vid --codec mjpeg -o
// -) or of raw frames of ExecWidth x ExecHeight (ExecFormat rgb24, bgr24,
// gray8). JPEG frames are decoded by internal/jpeg straight into the frame
// buffer (no allocation per frame), at 1/ExecScale of their size when
// ExecScale is 2, 4 or 8. Its standard error goes to the log. When it exits, or sends no
// frame for ReadTimeout, it is stopped and started again with the
// reconnection backoff; stopping it is SIGTERM to its group, then SIGKILL
// after a second. A stream that is cut mid-frame, carries garbage between
// frames or a frame larger than MaxPixels allows is resynchronised at the
// next image (Health.Resyncs), never buffered without bound.
//
// Live sources (devices, streams, pipelines, commands, named pipes) are read as fast as they
// deliver, so that the driver's buffers stay empty, into one bounded buffer
// (Config.Queue frames, default 1) with one drop policy: by default the
// oldest waiting frame goes, so a reader that falls behind gets recent
// frames, never an unbounded backlog. Recorded sources (files, folders,
// sequences, stills) hand out every frame in order, read on demand and paced
// to MaxFPS. In triggered mode a frame is taken only after Trigger, and is
// one captured after the trigger.
package camera

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
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

func (m Mode) String() string {
	switch m {
	case Continuous:
		return "continuous"
	case Triggered:
		return "triggered"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// ParseMode parses "continuous" or "triggered".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "continuous":
		return Continuous, nil
	case "triggered":
		return Triggered, nil
	}
	return 0, fmt.Errorf("%q is not continuous or triggered", s)
}

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
	KindExec     Kind = "exec"
	KindPipe     Kind = "pipe"
)

// Live reports whether frames arrive on their own (and stale ones should
// be dropped) rather than being read on demand.
func (k Kind) Live() bool {
	return k == KindDevice || k == KindURL || k == KindPipeline || k == KindExec || k == KindPipe
}

// pureGo reports whether the kind is read without GoCV.
func (k Kind) pureGo() bool {
	return k == KindDir || k == KindSequence || k == KindImage || k == KindExec || k == KindPipe
}

// ROI is a region of interest in frame pixels (zero: the whole frame).
type ROI struct{ X, Y, W, H int }

// Empty reports whether r selects the whole frame.
func (r ROI) Empty() bool { return r.W == 0 && r.H == 0 }

// ParseROI parses "x,y,w,h" ("" is the whole frame).
func ParseROI(s string) (ROI, error) {
	if s == "" {
		return ROI{}, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return ROI{}, fmt.Errorf("%q: want x,y,w,h", s)
	}
	var v [4]int
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return ROI{}, fmt.Errorf("%q: %q is not a non-negative integer", s, p)
		}
		v[i] = n
	}
	if v[2] == 0 || v[3] == 0 {
		return ROI{}, fmt.Errorf("%q has zero width or height", s)
	}
	return ROI{v[0], v[1], v[2], v[3]}, nil
}

// Drop policies of the frame buffer.
const (
	DropOldest = "oldest"
	DropNewest = "newest"
)

// Config describes a source. New takes zero fields from DefaultConfig.
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
	// Queue is the frame buffer between a live source and its reader: up
	// to Queue frames wait; when it is full, Drop says which frame goes,
	// DropOldest (the reader gets the newest frames) or DropNewest. It is
	// the only buffer between a camera and inspection.
	Queue int
	Drop  string
	// Folder sources: how long a file's size must stay unchanged before it
	// is read, how often the folder is scanned, and what happens to a file
	// once read: "keep", "delete" or "move:DIR".
	Settle, Poll time.Duration
	Done         string
	// Reconnection backoff: starts at BackoffMin, doubles, capped at
	// BackoffMax.
	BackoffMin, BackoffMax time.Duration
	// ReadTimeout declares a live source stalled when no frame came for this
	// long.
	ReadTimeout time.Duration
	// MaxPixels refuses image files (folders, sequences, stills) and
	// streamed frames (exec:, pipe:) larger than this many pixels before
	// decoding them: a small file can declare a huge image.
	MaxPixels int
	// Command and named pipe sources: the stream's format, ExecJPEG
	// (concatenated JPEG images, the default) or raw frames of
	// ExecWidth x ExecHeight pixels (ExecRGB24, ExecBGR24, ExecGray8).
	ExecFormat            string
	ExecWidth, ExecHeight int
	// ExecScale decodes a JPEG stream's frames at 1/ExecScale of their
	// size (1 or 0: full size; 2, 4, 8), in the DCT domain, which costs a
	// fraction of a full decoding: for a model whose input is much smaller
	// than the camera's frames. ROI is then in the reduced frame's pixels.
	ExecScale int
	// Memory, when set, keeps frame numbers and the folder files read
	// across restarts (the daemon keeps them in its outbox): Seq is then
	// never reused, and a folder's files are not read twice.
	Memory Memory
}

// Memory is persistent state a camera keeps across restarts.
type Memory interface {
	// Lease reserves n numbers of the counter name and returns the first.
	Lease(name string, n uint64) (uint64, error)
	// Remember records a key; Seen reports whether it was recorded.
	Remember(key string) error
	Seen(key string) bool
}

// Stream formats of command and named pipe sources.
const (
	ExecJPEG  = "jpeg"
	ExecRGB24 = "rgb24"
	ExecBGR24 = "bgr24"
	ExecGray8 = "gray8"
)

// ParseScale parses a decode scale as written in the config file: "1",
// "1/2", "1/4" or "1/8" ("" is 1). It returns the divisor.
func ParseScale(s string) (int, error) {
	switch strings.TrimSpace(s) {
	case "", "1":
		return 1, nil
	case "1/2":
		return 2, nil
	case "1/4":
		return 4, nil
	case "1/8":
		return 8, nil
	}
	return 0, fmt.Errorf("%q is not 1, 1/2, 1/4 or 1/8", s)
}

// execBytesPerPixel is the size of a raw format's pixel (0: not raw).
func execBytesPerPixel(format string) int {
	switch format {
	case ExecRGB24, ExecBGR24:
		return 3
	case ExecGray8:
		return 1
	}
	return 0
}

// DefaultConfig is the configuration where nothing is said: the one place
// that holds the camera's defaults (package config takes them from here).
func DefaultConfig() Config {
	return Config{
		Mode:        Continuous,
		Queue:       1,
		Drop:        DropOldest,
		Settle:      200 * time.Millisecond,
		Poll:        100 * time.Millisecond,
		Done:        "keep",
		BackoffMin:  500 * time.Millisecond,
		BackoffMax:  30 * time.Second,
		ReadTimeout: 5 * time.Second,
		MaxPixels:   50_000_000,
		ExecFormat:  ExecJPEG,
	}
}

func (c *Config) defaults() {
	d := DefaultConfig()
	if c.ID == "" {
		c.ID = c.Source
	}
	set := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	set(&c.Settle, d.Settle)
	set(&c.Poll, d.Poll)
	set(&c.BackoffMin, d.BackoffMin)
	set(&c.BackoffMax, d.BackoffMax)
	set(&c.ReadTimeout, d.ReadTimeout)
	if c.Done == "" {
		c.Done = d.Done
	}
	if c.Queue == 0 {
		c.Queue = d.Queue
	}
	if c.Drop == "" {
		c.Drop = d.Drop
	}
	if c.MaxPixels == 0 {
		c.MaxPixels = d.MaxPixels
	}
	if c.ExecFormat == "" {
		c.ExecFormat = d.ExecFormat
	}
}

// FieldError is one problem Validate found: Field is the Config field's
// name, Msg what is wrong with it.
type FieldError struct {
	Field, Msg string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Msg }

// Errors is every problem Validate found.
type Errors []FieldError

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return "camera: " + strings.Join(s, "; ")
}

// MaxQueue bounds the frame buffer.
const MaxQueue = 1024

// Validate checks the configuration without opening anything and reports
// every problem (Errors); zero fields are taken as their defaults.
func (c *Config) Validate() error {
	var es Errors
	bad := func(field, format string, a ...any) {
		es = append(es, FieldError{Field: field, Msg: fmt.Sprintf(format, a...)})
	}
	if strings.TrimSpace(c.Source) == "" {
		bad("Source", "no frame source (a device, URL, pipeline, dir:PATH, exec:COMMAND, pipe:PATH, pattern, image or video file)")
	}
	switch k := KindOf(c.Source); k {
	case KindExec:
		if args, err := SplitCommand(strings.TrimPrefix(strings.TrimSpace(c.Source), "exec:")); err != nil {
			bad("Source", "%v", err)
		} else if len(args) == 0 {
			bad("Source", "exec: without a command")
		}
	case KindPipe:
		if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(c.Source), "pipe:")) == "" {
			bad("Source", "pipe: without a path")
		}
	}
	switch bpp := execBytesPerPixel(c.ExecFormat); {
	case c.ExecFormat == "" || c.ExecFormat == ExecJPEG:
	case bpp == 0:
		bad("ExecFormat", "%q is not jpeg, rgb24, bgr24 or gray8", c.ExecFormat)
	default:
		if c.ExecWidth <= 0 {
			bad("ExecWidth", "raw %s frames need their width", c.ExecFormat)
		}
		if c.ExecHeight <= 0 {
			bad("ExecHeight", "raw %s frames need their height", c.ExecFormat)
		}
		limit := c.MaxPixels
		if limit == 0 {
			limit = DefaultConfig().MaxPixels
		}
		if c.ExecWidth > 0 && c.ExecHeight > 0 && (c.ExecWidth > limit || c.ExecHeight > limit || int64(c.ExecWidth)*int64(c.ExecHeight) > int64(limit)) {
			bad("ExecWidth", "%dx%d frames are more than max pixels (%d)", c.ExecWidth, c.ExecHeight, limit)
		}
	}
	switch c.ExecScale {
	case 0, 1:
	case 2, 4, 8:
		if k := KindOf(c.Source); k != KindExec && k != KindPipe {
			bad("ExecScale", "1/%d: decoding at a reduced size is for exec: and pipe: JPEG streams, not %s sources", c.ExecScale, k)
		} else if execBytesPerPixel(c.ExecFormat) > 0 {
			bad("ExecScale", "1/%d: decoding at a reduced size is for JPEG streams, not raw %s frames", c.ExecScale, c.ExecFormat)
		}
	default:
		bad("ExecScale", "1/%d is not 1, 1/2, 1/4 or 1/8", c.ExecScale)
	}
	if c.ExecWidth < 0 {
		bad("ExecWidth", "%d is negative", c.ExecWidth)
	}
	if c.ExecHeight < 0 {
		bad("ExecHeight", "%d is negative", c.ExecHeight)
	}
	if c.Mode != Continuous && c.Mode != Triggered {
		bad("Mode", "unknown mode %d", c.Mode)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"MaxFPS", c.MaxFPS}, {"FPS", c.FPS}, {"Width", float64(c.Width)}, {"Height", float64(c.Height)}, {"Buffers", float64(c.Buffers)}} {
		if f.v < 0 {
			bad(f.name, "%v is negative", f.v)
		}
	}
	switch c.Format {
	case "", "MJPG", "YUYV":
	default:
		bad("Format", "%q is not MJPG or YUYV", c.Format)
	}
	if c.MaxPixels < 0 {
		bad("MaxPixels", "%d is negative", c.MaxPixels)
	}
	if c.Queue < 0 || c.Queue > MaxQueue {
		bad("Queue", "%d outside 1..%d", c.Queue, MaxQueue)
	}
	switch c.Drop {
	case "", DropOldest, DropNewest:
	default:
		bad("Drop", "%q is not %s or %s", c.Drop, DropOldest, DropNewest)
	}
	if c.Done != "" && c.Done != "keep" && c.Done != "delete" && (!strings.HasPrefix(c.Done, "move:") || c.Done == "move:") {
		bad("Done", "%q is not keep, delete or move:DIR", c.Done)
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"Settle", c.Settle}, {"Poll", c.Poll}, {"BackoffMin", c.BackoffMin}, {"BackoffMax", c.BackoffMax}, {"ReadTimeout", c.ReadTimeout}} {
		if f.v < 0 {
			bad(f.name, "%v is negative", f.v)
		}
	}
	if len(es) > 0 {
		return es
	}
	return nil
}

// credentials matches the user:password@ of a URL (rtsp://user:pw@host/).
var credentials = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@\s:]*):([^/@\s]*)@`)

// Redact hides the passwords of URLs in s (rtsp://user:***@host), for
// logs, health, status and errors: camera sources often carry them.
func Redact(s string) string {
	return credentials.ReplaceAllString(s, "${1}${2}:***@")
}

var imageExt = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".bmp": true}

// KindOf classifies a source string.
func KindOf(src string) Kind {
	s := strings.TrimSpace(src)
	switch {
	case strings.HasPrefix(s, "exec:"):
		return KindExec
	case strings.HasPrefix(s, "pipe:"):
		return KindPipe
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
