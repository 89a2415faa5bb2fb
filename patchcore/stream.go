package patchcore

import (
	"fmt"
	"runtime/debug"
	"slices"
	"sync"

	"github.com/linesight/linesight/bank"
)

// patchStore holds what Build keeps of its training images between the
// embedding and the banks: each image's taps as the backbone handed them
// out, and the largest |value| of the patch vectors the bank learns from it.
//
// A bank's int8 scale is max |value| / 127 over all the patches it learns
// (bank.ScaleFor), so no patch can be quantized before the last image is
// embedded, and each calibration fold's bank has its own scale (that of the
// other folds' images). Keeping every float vector until then cost 4 bytes
// a value, plus a float copy per fold. The maximum of a set of images is
// the maximum of their maxima, so the store knows every subset's scale
// without its vectors; and the vectors are recomputed from the taps when
// they are quantized: the same arithmetic on the same bytes, so the same
// floats, the same int8 values and the same bank. The taps of an int8
// backbone take one byte a value before the 3×3 pooling and the upsampling
// of the deeper map: about half the int8 vectors (ResNet18 layer2 + layer3:
// 150,528 bytes an image against 301,056). Recomputing costs the embedding
// stage (pooling, upsampling), not the backbone.
type patchStore struct {
	fr     *framer
	emb    *Embedder
	roi    []int32 // the cells the bank learns (nil: all)
	dim    int
	kept   int       // patches a bank learns per image
	per    int       // tap bytes per image
	taps   []byte    // every image's taps, image after image
	maxAbs []float32 // bank.MaxAbs of each image's learnt patches
	inside []float32 // scratch for the cells inside the region of interest
}

func newPatchStore(fr *framer, emb *Embedder, roi []int32, images int) *patchStore {
	dim := emb.Dim()
	s := &patchStore{fr: fr, emb: emb, roi: roi, dim: dim, per: fr.tapBytes(emb)}
	gw, gh := emb.Grid()
	s.kept = gw * gh * fr.count()
	if roi != nil {
		s.kept = len(roi)
		s.inside = make([]float32, len(roi)*dim)
	}
	s.taps = make([]byte, images*s.per)
	s.maxAbs = make([]float32, images)
	return s
}

// keep returns the buffer image i's taps are kept in (see framer.embedKeep).
func (s *patchStore) keep(i int) []byte { return s.taps[i*s.per : (i+1)*s.per] }

// embedded records the vectors v that image i's taps gave.
func (s *patchStore) embedded(i int, v []float32) { s.maxAbs[i] = bank.MaxAbs(s.learnt(v)) }

// vectors returns image i's patch vectors (every cell), valid until the
// next call.
func (s *patchStore) vectors(i int) []float32 { return s.fr.reembed(s.emb, s.keep(i)) }

// learnt returns the vectors of v a bank learns: all, or those of the
// cells inside the region of interest.
func (s *patchStore) learnt(v []float32) []float32 {
	if s.roi == nil {
		return v
	}
	for k, c := range s.roi {
		copy(s.inside[k*s.dim:(k+1)*s.dim], v[int(c)*s.dim:(int(c)+1)*s.dim])
	}
	return s.inside
}

// scale is the int8 scale of a bank learning the images imgs.
func (s *patchStore) scale(imgs []int) float32 {
	var m float32
	for _, i := range imgs {
		m = max(m, s.maxAbs[i])
	}
	return bank.ScaleOfMax(m)
}

// quantize writes the learnt vectors of imgs, in that order, quantized
// with scale, to q.
func (s *patchStore) quantize(q []int8, imgs []int, scale float32) {
	n := s.kept * s.dim
	for k, i := range imgs {
		bank.Quantize(s.learnt(s.vectors(i)), scale, q[k*n:(k+1)*n])
	}
}

// dropTaps releases the taps once q holds every image's int8 vectors at
// the bank's scale (and scoring reads them there, scoreRows): at 768-d,
// a fifth of a build's memory. vectors, quantize and floats need them.
func (s *patchStore) dropTaps() { s.taps = nil }

// scoreRows scores with d the frame whose learnt int8 vectors are rows:
// what d.scoreVecs makes of the frame's float vectors when d's bank has
// the scale they were quantized with (bank.Quantize, the same rounding).
// With a region of interest, rows are the cells inside it, the only ones
// d searches (Detector.scoreROI); the others' values are not read.
func scoreRows(d *Detector, rows []int8, roi []int32, fw, fh int, r *Result) error {
	dim := d.meta.Dim
	if roi == nil {
		if len(rows) != len(d.q) {
			return fmt.Errorf("patchcore: %d int8 values, the bank's grid needs %d", len(rows), len(d.q))
		}
		copy(d.q, rows)
	} else {
		if len(rows) != len(roi)*dim || !slices.Equal(roi, d.roiCells) {
			return fmt.Errorf("patchcore: %d int8 values for %d cells of interest, the bank's are %d", len(rows), len(roi), len(d.roiCells))
		}
		for k, c := range roi {
			copy(d.q[int(c)*dim:(int(c)+1)*dim], rows[k*dim:(k+1)*dim])
		}
	}
	return d.scoreEmbedded(fw, fh, r)
}

// rows lists the rows of a quantize of every image that belong to imgs.
func (s *patchStore) rows(imgs []int) []int32 {
	r := make([]int32, 0, len(imgs)*s.kept)
	for _, i := range imgs {
		for c := range s.kept {
			r = append(r, int32(i*s.kept+c))
		}
	}
	return r
}

// floats returns the learnt float vectors at rows (of a quantize of every
// image), recomputed: each image's once.
func (s *patchStore) floats(rows []int) []float32 {
	out := make([]float32, len(rows)*s.dim)
	order := make([]int, len(rows))
	for k := range order {
		order[k] = k
	}
	slices.SortFunc(order, func(a, b int) int { return rows[a] - rows[b] })
	img := -1
	var v []float32
	for _, k := range order {
		r := rows[k]
		if r/s.kept != img {
			img = r / s.kept
			v = s.learnt(s.vectors(img))
		}
		c := r % s.kept
		copy(out[k*s.dim:(k+1)*s.dim], v[c*s.dim:(c+1)*s.dim])
	}
	return out
}

// buildGCPercent is the collector's GOGC while a build embeds its images,
// foldGCPercent from its folds on. A build holds its int8 patches and taps
// live throughout (hundreds of MiB at 768-d, without pointers), and the
// coreset selections and scoring make short-lived garbage at a high rate:
// with the default GOGC of 100 the heap grows to twice the live patches
// before each collection, which doubled the peak for nothing. The
// collector's work is proportional to the memory that holds pointers,
// little here, so a cycle costs a few milliseconds. The peak comes in the
// first fold (patches, taps and a fold's bank live at once): 768-d
// bottle, the station binary, heap at most 300 MiB at 10%, 273 at 5%,
// about 545 at 100. 5% in the embedding, where the live heap is half that,
// made the build about a second slower for nothing (paired runs).
const (
	buildGCPercent = 10
	foldGCPercent  = 5
)

// gcLow holds the GOGC that running builds asked for (lowerGCPercent),
// and the value from before the first.
var gcLow struct {
	sync.Mutex
	asked map[*int]struct{}
	saved int
}

// lowerGCPercent sets GOGC to pct, unless it is lower or off, until the
// function it returns is called; set changes this call's pct. Concurrent
// builds share it: the lowest asked is in force, and the last restore
// brings back the value from before the first.
func lowerGCPercent(pct int) (set func(int), restore func()) {
	gcLow.Lock()
	defer gcLow.Unlock()
	if len(gcLow.asked) == 0 {
		gcLow.asked = map[*int]struct{}{}
		gcLow.saved = debug.SetGCPercent(-1)
		debug.SetGCPercent(gcLow.saved)
	}
	p := &pct
	gcLow.asked[p] = struct{}{}
	applyGCPercent()
	set = func(pct int) {
		gcLow.Lock()
		defer gcLow.Unlock()
		*p = pct
		applyGCPercent()
	}
	restore = func() {
		gcLow.Lock()
		defer gcLow.Unlock()
		delete(gcLow.asked, p)
		if len(gcLow.asked) == 0 {
			debug.SetGCPercent(gcLow.saved)
			return
		}
		applyGCPercent()
	}
	return set, restore
}

// applyGCPercent sets GOGC to the lowest asked, or leaves the saved value
// if that is lower or off (< 0). gcLow is locked.
func applyGCPercent() {
	want := gcLow.saved
	if want >= 0 {
		for p := range gcLow.asked {
			want = min(want, *p)
		}
	}
	debug.SetGCPercent(want)
}
