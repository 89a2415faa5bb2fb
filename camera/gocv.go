//go:build !nogocv && cgo

package camera

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"gocv.io/x/gocv"

	"github.com/linesight/linesight/internal/rgb"
)

const haveGoCV = true

// OpenCV's timeouts for network streams (CAP_PROP_OPEN_TIMEOUT_MSEC and
// CAP_PROP_READ_TIMEOUT_MSEC, FFmpeg backend); gocv v0.32 has no names.
const (
	propOpenTimeoutMs gocv.VideoCaptureProperties = 53
	propReadTimeoutMs gocv.VideoCaptureProperties = 54
)

// gocvDriver reads devices, streams, pipelines and video files with OpenCV.
type gocvDriver struct {
	cfg  Config
	kind Kind
	cap  *gocv.VideoCapture
	mat  gocv.Mat
	rgb  gocv.Mat
}

func newGoCVDriver(cfg Config, _ *slog.Logger) (driver, error) {
	return &gocvDriver{cfg: cfg, kind: KindOf(cfg.Source)}, nil
}

func fourcc(s string) float64 {
	if len(s) != 4 {
		return 0
	}
	return float64(uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24)
}

func (d *gocvDriver) Open(context.Context) (Info, error) {
	src := strings.TrimSpace(d.cfg.Source)
	var err error
	switch d.kind {
	case KindDevice:
		if n, e := strconv.Atoi(src); e == nil {
			d.cap, err = gocv.VideoCaptureDeviceWithAPI(n, gocv.VideoCaptureV4L2)
		} else {
			if _, e := os.Stat(src); e != nil {
				return Info{}, e
			}
			d.cap, err = gocv.VideoCaptureFileWithAPI(src, gocv.VideoCaptureV4L2)
		}
	case KindPipeline:
		d.cap, err = gocv.VideoCaptureFileWithAPI(src, gocv.VideoCaptureGstreamer)
	case KindURL:
		d.cap, err = gocv.VideoCaptureFileWithAPI(src, gocv.VideoCaptureFFmpeg)
	default:
		if _, e := os.Stat(src); e != nil {
			return Info{}, e
		}
		d.cap, err = gocv.VideoCaptureFileWithAPI(src, gocv.VideoCaptureAny)
	}
	if err != nil {
		return Info{}, err
	}
	if !d.cap.IsOpened() {
		d.cap.Close()
		d.cap = nil
		return Info{}, fmt.Errorf("OpenCV could not open %q", src)
	}
	if d.kind == KindDevice {
		// The pixel format first: it decides which sizes and rates exist.
		if f := fourcc(d.cfg.Format); f != 0 {
			d.cap.Set(gocv.VideoCaptureFOURCC, f)
		}
		if d.cfg.Width > 0 && d.cfg.Height > 0 {
			d.cap.Set(gocv.VideoCaptureFrameWidth, float64(d.cfg.Width))
			d.cap.Set(gocv.VideoCaptureFrameHeight, float64(d.cfg.Height))
		}
		if d.cfg.FPS > 0 {
			d.cap.Set(gocv.VideoCaptureFPS, d.cfg.FPS)
		}
	}
	if d.cfg.Buffers > 0 {
		d.cap.Set(gocv.VideoCaptureBufferSize, float64(d.cfg.Buffers))
	}
	if d.kind == KindURL {
		d.cap.Set(propReadTimeoutMs, float64(d.cfg.ReadTimeout.Milliseconds()))
	}
	d.mat, d.rgb = gocv.NewMat(), gocv.NewMat()
	return Info{
		Backend: gocv.VideoCaptureAPI(int(d.cap.Get(gocv.VideoCaptureBackend))).String(),
		Width:   int(d.cap.Get(gocv.VideoCaptureFrameWidth)),
		Height:  int(d.cap.Get(gocv.VideoCaptureFrameHeight)),
		FPS:     d.cap.Get(gocv.VideoCaptureFPS),
	}, nil
}

func (d *gocvDriver) Read(_ context.Context, dst *rgb.Image) error {
	if !d.cap.Read(&d.mat) || d.mat.Empty() {
		if d.kind == KindVideo {
			return io.EOF
		}
		return errors.New("no frame from the source (unplugged, ended or stalled)")
	}
	return matToRGB(d.mat, &d.rgb, dst)
}

// matToRGB converts an 8-bit BGR, BGRA or grey Mat to RGB into dst. tmp is
// a reused scratch Mat: after the first frame of a size nothing allocates.
func matToRGB(m gocv.Mat, tmp *gocv.Mat, dst *rgb.Image) error {
	if m.Type()&7 != gocv.MatTypeCV8U&7 {
		return fmt.Errorf("frame of Mat type %v; want 8-bit", m.Type())
	}
	switch m.Channels() {
	case 3:
		gocv.CvtColor(m, tmp, gocv.ColorBGRToRGB)
	case 4:
		gocv.CvtColor(m, tmp, gocv.ColorConversionCode(3)) // COLOR_BGRA2RGB
	case 1:
		gocv.CvtColor(m, tmp, gocv.ColorConversionCode(8)) // COLOR_GRAY2RGB (= GRAY2BGR)
	default:
		return fmt.Errorf("frame with %d channels", m.Channels())
	}
	w, h := tmp.Cols(), tmp.Rows()
	data, err := tmp.DataPtrUint8()
	if err != nil {
		return err
	}
	dst.Ensure(w, h)
	if !tmp.IsContinuous() {
		return errors.New("converted frame is not continuous")
	}
	copy(dst.Pix, data[:3*w*h])
	return nil
}

func (d *gocvDriver) Close() error {
	if d.cap == nil {
		return nil
	}
	d.mat.Close()
	d.rgb.Close()
	err := d.cap.Close()
	d.cap = nil
	return err
}
