package patchcore

import (
	"image"
	"image/color"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/heatmap"
	"github.com/linesight/linesight/internal/rgb"
)

// Map renderings.
const (
	// MapHeatmap is the anomaly map in jet colours blended over the frame,
	// the pixel threshold's contour in white and the regions' boxes in red.
	MapHeatmap = "heatmap"
	// MapRaw is the anomaly map as 8-bit grey, 128 at the pixel threshold.
	MapRaw = "raw"
)

// overlayAlpha is the heatmap's opacity over the frame.
const overlayAlpha = 0.45

// PixelScale maps anomaly-map values to [0, 1] the way Normalize maps
// image scores: 0.5 at the pixel threshold, a typical good part's map
// maximum at 0.05.
func PixelScale(th *bank.Threshold) func(float32) float64 {
	w := logisticWidth(th.Pixel, th.PixelStats.Mean)
	return func(v float32) float64 { return Normalize(float64(v), th.Pixel, w) }
}

// RenderMap draws r's anomaly map for frame (the image r was scored on) in
// the given rendering (MapHeatmap or MapRaw), at frame resolution or
// shrunk to at most maxWidth pixels wide (0: no limit). th is the bank's
// threshold, whose pixel threshold scales the colours.
func RenderMap(frame *rgb.Image, r *Result, th *bank.Threshold, rendering string, maxWidth int) image.Image {
	g := r.Geometry
	fm := make([]float32, g.FrameW*g.FrameH)
	g.ToFrame(r.Map, fm)
	scale := PixelScale(th)
	var img image.Image
	if rendering == MapRaw {
		img = heatmap.Gray(fm, g.FrameW, g.FrameH, scale)
	} else {
		var dst rgb.Image
		heatmap.Overlay(&dst, frame, fm, scale, overlayAlpha, th.Pixel)
		for _, reg := range r.Regions {
			heatmap.Box(&dst, reg.X, reg.Y, reg.W, reg.H, color.RGBA{255, 0, 0, 255})
		}
		img = dst.ToImage()
	}
	return heatmap.Shrink(img, maxWidth)
}
