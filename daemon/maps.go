package daemon

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/heatmap"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

// mapJob is one anomaly map to encode, off the inference path.
type mapJob struct {
	seq     uint64
	topic   string
	frame   *rgb.Image
	amap    []float32
	geom    patchcore.Geometry
	regions []patchcore.Region
	th      bank.Threshold
}

func cloneImage(img *rgb.Image) *rgb.Image {
	c := rgb.New(img.W, img.H)
	copy(c.Pix, img.Pix)
	return c
}

// encodeMaps turns map jobs into PNGs (heatmap over the frame, or the raw
// 8-bit map), scaled to at most maps.max_width, and publishes them.
func (d *Daemon) encodeMaps() {
	for job := range d.mapJobs {
		png, err := d.renderMap(job)
		if err != nil {
			d.log.Error("anomaly map", "seq", job.seq, "err", err)
			continue
		}
		d.client.Publish(mqtt.Item{Kind: mqtt.KindMap, Topic: job.topic, Payload: png})
		if dir := d.cfg.Maps.Dir; dir != "" {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("map_%06d.png", job.seq)), png, 0o644); err != nil {
				d.log.Warn("writing map file", "err", err)
			}
		}
	}
}

func (d *Daemon) renderMap(job mapJob) ([]byte, error) {
	g := job.geom
	fm := make([]float32, g.FrameW*g.FrameH)
	g.ToFrame(job.amap, fm)
	w := (job.th.Pixel - job.th.PixelStats.Mean) / math.Log(19)
	scale := func(v float32) float64 { return patchcore.Normalize(float64(v), job.th.Pixel, w) }
	var img image.Image
	if d.cfg.Maps.Format == "raw" {
		img = heatmap.Gray(fm, g.FrameW, g.FrameH, scale)
	} else {
		var dst rgb.Image
		heatmap.Overlay(&dst, job.frame, fm, scale, 0.45, job.th.Pixel)
		for _, r := range job.regions {
			heatmap.Box(&dst, r.X, r.Y, r.W, r.H, color.RGBA{255, 0, 0, 255})
		}
		img = dst.ToImage()
	}
	img = shrink(img, d.cfg.Maps.MaxWidth)
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// shrink scales img down (box filter) so that its width is at most w.
func shrink(img image.Image, w int) image.Image {
	b := img.Bounds()
	if b.Dx() <= w {
		return img
	}
	f := (b.Dx() + w - 1) / w
	nw, nh := b.Dx()/f, b.Dy()/f
	out := image.NewRGBA(image.Rect(0, 0, nw, nh))
	for y := 0; y < nh; y++ {
		for x := 0; x < nw; x++ {
			var r, g, bl, n uint32
			for dy := 0; dy < f; dy++ {
				for dx := 0; dx < f; dx++ {
					cr, cg, cb, _ := img.At(b.Min.X+x*f+dx, b.Min.Y+y*f+dy).RGBA()
					r, g, bl, n = r+cr>>8, g+cg>>8, bl+cb>>8, n+1
				}
			}
			out.SetRGBA(x, y, color.RGBA{uint8(r / n), uint8(g / n), uint8(bl / n), 255})
		}
	}
	return out
}
