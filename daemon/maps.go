package daemon

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"path/filepath"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

// mapJob is one anomaly map to render, off the inspection path: copies of
// the frame and of what the detector found in it.
type mapJob struct {
	seq       uint64
	topic     string
	frame     *rgb.Image
	result    patchcore.Result // Map, Geometry and Regions
	threshold bank.Threshold
}

// encodeMaps renders the pipeline's map jobs as PNGs (maps.format, at most
// maps.max_width wide) and publishes them, until the pipeline closes the
// queue. It drains the queue whatever ctx says.
func (p *pipeline) encodeMaps(context.Context) {
	s := p.s
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	for job := range p.maps {
		img := patchcore.RenderMap(job.frame, &job.result, &job.threshold, s.cfg.Maps.Format, s.cfg.Maps.MaxWidth)
		var buf bytes.Buffer
		if err := enc.Encode(&buf, img); err != nil {
			s.log.Error("anomaly map", "seq", job.seq, "err", err)
			continue
		}
		s.client.Publish(mqtt.Item{Kind: mqtt.KindMap, Topic: job.topic, Payload: buf.Bytes()})
		s.keepMap(job.seq, buf.Bytes()) // for its URL in the Sparkplug metrics (sparkplug.go)
		if dir := s.cfg.Maps.Dir; dir != "" {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("map_%06d.png", job.seq)), buf.Bytes(), 0o644); err != nil {
				s.log.Warn("writing map file", "err", err)
			}
		}
	}
}
