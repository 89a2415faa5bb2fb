package daemon

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/linesight/linesight/camera"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

// pipeline takes frames from the camera, scores them with the detector in
// use and publishes the results; anomaly maps go to the map encoder. The
// camera's buffer is the only one between capture and inspection: the
// pipeline asks for the next frame when it is ready for one.
type pipeline struct {
	s        *station
	maps     chan mapJob
	lastDone atomic.Int64 // unix nanos of the last inspected frame
	busy     atomic.Int64 // unix nanos since the frame in inspection started, 0 when none
}

// stuck reports whether a frame has been in inspection for longer than d:
// the only way the station can be alive and not inspecting.
func (p *pipeline) stuck(d time.Duration) bool {
	b := p.busy.Load()
	return b != 0 && time.Since(time.Unix(0, b)) > d
}

// mapQueue is how many maps may wait for the encoder; beyond it a frame's
// map is skipped (and counted) rather than delaying results.
const mapQueue = 2

func newPipeline(s *station) *pipeline {
	return &pipeline{s: s, maps: make(chan mapJob, mapQueue)}
}

// run inspects frames until the camera stops (the frames it still holds
// are inspected first) or ctx ends, then closes the map queue.
func (p *pipeline) run(ctx context.Context) {
	defer close(p.maps)
	var r patchcore.Result
	for {
		f, err := p.s.cam.Next(ctx)
		if err != nil {
			return
		}
		if p.s.banks.swapIn() {
			p.s.publishStatus()
		}
		p.s.offerEnroll(f.Image)
		if p.s.banks.current() == nil {
			f.Release() // needs-bank: nothing to inspect with yet
			continue
		}
		if p.inspect(f, &r) {
			p.s.banks.scoreCanary(f.Image, &r)
		}
		f.Release()
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ResultMessage is the wire form of a detector's result for a frame
// (everything but where the frame came from: station, seq, time, the
// capture and total latencies, and the map reference). The daemon and
// `linesight inspect --json` both publish results through it.
func ResultMessage(r *patchcore.Result, bankVersion uint64) mqtt.Result {
	t := &r.Timing
	out := mqtt.Result{Verdict: mqtt.VerdictOf(r.Fail), Score: r.Score, Normalized: r.Normalized, Threshold: r.Threshold,
		BankVersion: bankVersion, Frame: [2]int{r.Geometry.FrameW, r.Geometry.FrameH}, Regions: make([]mqtt.Region, len(r.Regions)),
		Latency: mqtt.Latency{Preprocess: ms(t[patchcore.StagePreprocess]), Backbone: ms(t[patchcore.StageBackbone]),
			Embed: ms(t[patchcore.StageEmbed]), Search: ms(t[patchcore.StageSearch]), Map: ms(t[patchcore.StageMap]), Total: ms(t.Total())}}
	for i, g := range r.Regions {
		out.Regions[i] = mqtt.Region{X: g.X, Y: g.Y, W: g.W, H: g.H, Peak: g.Peak, Area: g.Area}
	}
	return out
}

// inspect scores f with the bank in use and publishes the result; false
// when it could not be scored.
func (p *pipeline) inspect(f *camera.Frame, r *patchcore.Result) bool {
	s := p.s
	start := time.Now()
	p.busy.Store(start.UnixNano())
	defer p.busy.Store(0)
	det := s.banks.current()
	if err := det.InspectInto(f.Image, r); err != nil {
		s.log.Error("inspection failed", "seq", f.Seq, "err", err)
		s.metrics.errors.Inc()
		s.scada.failed(f.Seq)
		return false
	}
	meta := &det.Bank().Meta
	res := ResultMessage(r, meta.Version)
	res.Station, res.Seq, res.Time = s.cfg.Station.ID, f.Seq, f.Time.UTC().Format(time.RFC3339Nano)
	res.Recipe, res.RecipeNumber = s.recipes.of(meta.Version)
	res.Latency.Capture, res.Latency.Total = ms(start.Sub(f.Time)), ms(time.Since(f.Time))
	if pol := s.cfg.Maps.Policy; pol == "always" || (pol == "fail" && r.Fail) {
		// Copies: the frame goes back to the camera and the detector reuses
		// its map and regions on the next frame, while this map is drawn.
		topic := mqtt.TopicMapPrefix + strconv.FormatUint(f.Seq, 10)
		job := mapJob{seq: f.Seq, topic: topic, frame: f.Image.Clone(), threshold: meta.Threshold,
			result: patchcore.Result{Map: slices.Clone(r.Map), Geometry: r.Geometry, Regions: slices.Clone(r.Regions)}}
		select {
		case p.maps <- job:
			res.Map = &mqtt.MapRef{Topic: s.client.Topic(topic), Format: s.cfg.Maps.Format}
		default:
			s.metrics.drops.WithLabelValues("map").Inc() // the encoder is behind: skip this map
		}
	}
	verdict := res.Verdict
	payload, _ := json.Marshal(res)
	if s.evidence != nil {
		s.evidence.add(f.Seq, f.Image, payload)
	}
	if s.console != nil {
		s.console.hub.publish(f.Image, r, &res, payload, &meta.Threshold, time.Now())
	}
	// The PLC handshake and Sparkplug get the result first, off this path:
	// the publish below waits for the broker's acknowledgements, which a
	// PLC waiting for result_ready need not wait behind.
	s.scada.result(&res, meta.SHA256)
	// Only the result goes through the outbox (exactly once, in seq
	// order); verdict and score are retained latest values, published
	// once the result is with the broker, and while it is away only their
	// newest values are kept: a replay of stale ones is of no use to a
	// PLC, and each outbox message costs two disk syncs.
	s.client.Publish(mqtt.Item{Kind: mqtt.KindResult, Topic: mqtt.TopicResult, Payload: payload},
		mqtt.Item{Latest: true, Topic: mqtt.TopicVerdict, Payload: []byte(verdict)},
		mqtt.Item{Latest: true, Topic: mqtt.TopicScore, Payload: []byte(strconv.FormatFloat(r.Score, 'g', 6, 64))})
	p.lastDone.Store(time.Now().UnixNano())
	s.metrics.observe(verdict, &r.Timing, start.Sub(f.Time), time.Since(f.Time))
	s.log.Debug("frame", "seq", f.Seq, "verdict", verdict, "score", r.Score)
	return true
}
