package bank

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/linesight/linesight/internal/parallel"
)

// patchModel draws synthetic patch features with the structure of a CNN's:
// a few textures (prototypes) in a low-dimensional latent space, mapped
// linearly to dim values, plus per-value noise, quantized with one scale.
// A frame draws its patches from a handful of textures; anomalous patches
// come from textures the bank never saw.
type patchModel struct {
	dim, latent int
	a           []float64 // dim×latent
	mu          []float64 // textures×latent
	spread      []float64 // per texture
	noise       float64
	scale       float64
}

func newPatchModel(seed uint64, dim, latent, textures int) *patchModel {
	rng := rand.New(rand.NewPCG(seed, 2))
	pm := &patchModel{dim: dim, latent: latent, a: make([]float64, dim*latent),
		mu: make([]float64, textures*latent), spread: make([]float64, textures), noise: 0.35}
	for i := range pm.a {
		pm.a[i] = rng.NormFloat64() / math.Sqrt(float64(latent))
	}
	for i := range pm.mu {
		pm.mu[i] = 2.5 * rng.NormFloat64()
	}
	for i := range pm.spread {
		pm.spread[i] = 0.5 + rng.Float64()
	}
	pm.scale = 127 / 6.0 // about 4.5 standard deviations of a value
	return pm
}

// draw writes one patch of texture tex into out.
func (pm *patchModel) draw(rng *rand.Rand, tex int, out []int8, z []float64) {
	for l := range z {
		z[l] = pm.mu[tex*pm.latent+l] + pm.spread[tex]*rng.NormFloat64()
	}
	for d := range out {
		v := pm.noise * rng.NormFloat64()
		for l, zl := range z {
			v += pm.a[d*pm.latent+l] * zl
		}
		out[d] = int8(max(-127, min(127, math.RoundToEven(v*pm.scale))))
	}
}

// synthBank is n patches of the model's first trained textures, and frames
// of m patches: good frames from 3 of those textures each, anomalous
// frames with a tenth of their patches from unseen textures.
func synthBank(seed uint64, n, dim, m, frames int) (bank []int8, good, bad [][]int8) {
	const trained, textures = 24, 32
	pm := newPatchModel(seed, dim, 16, textures)
	rng := rand.New(rand.NewPCG(seed, 3))
	z := make([]float64, pm.latent)
	bank = make([]int8, n*dim)
	for i := range n {
		pm.draw(rng, rng.IntN(trained), bank[i*dim:(i+1)*dim], z)
	}
	frame := func(anomalous bool) []int8 {
		q := make([]int8, m*dim)
		tex := []int{rng.IntN(trained), rng.IntN(trained), rng.IntN(trained)}
		for i := range m {
			t := tex[rng.IntN(3)]
			if anomalous && i%10 == 0 {
				t = trained + rng.IntN(textures-trained)
			}
			pm.draw(rng, t, q[i*dim:(i+1)*dim], z)
		}
		return q
	}
	for range frames {
		good = append(good, frame(false))
		bad = append(bad, frame(true))
	}
	return bank, good, bad
}

// BenchmarkSearch is a ResNet18-sized search (784 patches of 384 values
// against 15,680 bank vectors) on synthetic features, good and anomalous
// frames, by brute force and by clusters, on 2 threads. It reports the
// MACs per frame of each (deterministic) beside the times.
func BenchmarkSearch(b *testing.B) {
	const n, dim, m = 15680, 384, 784
	vecs, good, bad := synthBank(18, n, dim, m, 8)
	bk := &Bank{Meta: Meta{Dim: dim, Count: n}, Vectors: vecs, Norms: norms(vecs, dim)}
	pool := parallel.New(2)
	defer pool.Close()
	clustered := NewSearcher(bk, pool)
	brute := newBruteSearcher(bk, pool)
	d2, idx := make([]int32, m), make([]int32, m)
	for _, fr := range []struct {
		name   string
		frames [][]int8
	}{{"good", good}, {"anomalous", bad}} {
		for _, sr := range []struct {
			name string
			s    *Searcher
		}{{"brute", brute}, {"clustered", clustered}} {
			b.Run("resnet18-synth/"+fr.name+"/"+sr.name, func(b *testing.B) {
				s := sr.s
				_ = s.Nearest(fr.frames[0], m, d2, idx)
				before := s.MACs()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					_ = s.Nearest(fr.frames[i%len(fr.frames)], m, d2, idx)
				}
				b.ReportMetric(float64(s.MACs()-before)/float64(b.N), "MACs/frame")
			})
		}
	}
}

// TestSearchWorkSynthetic prints the search's work per frame on the
// synthetic ResNet18-sized bank, and checks it gives brute force's
// results there.
func TestSearchWorkSynthetic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 15,680 x 384 bank")
	}
	const n, dim, m = 15680, 384, 784
	vecs, good, bad := synthBank(18, n, dim, m, 4)
	bk := &Bank{Meta: Meta{Dim: dim, Count: n}, Vectors: vecs, Norms: norms(vecs, dim)}
	pool := parallel.New(2)
	defer pool.Close()
	s := NewSearcher(bk, pool)
	bf := newBruteSearcher(bk, pool)
	d2, idx, bd, bi := make([]int32, m), make([]int32, m), make([]int32, m), make([]int32, m)
	for _, kind := range []struct {
		name   string
		frames [][]int8
	}{{"good", good}, {"anomalous", bad}} {
		var macs []float64
		for _, q := range kind.frames {
			before := s.MACs()
			_ = s.Nearest(q, m, d2, idx)
			macs = append(macs, float64(s.MACs()-before))
			_ = bf.Nearest(q, m, bd, bi)
			for i := range m {
				if d2[i] != bd[i] || idx[i] != bi[i] {
					t.Fatalf("%s frame, patch %d: clustered (%d, #%d), brute (%d, #%d)", kind.name, i, d2[i], idx[i], bd[i], bi[i])
				}
			}
		}
		sort.Float64s(macs)
		full := float64(m) * n * dim
		t.Logf("%s frames: median %.3g MACs per frame, brute force %.3g: %.2fx less", kind.name, macs[len(macs)/2], full, full/macs[len(macs)/2])
	}
}

// pairedSearch times brute force and the clustered search on the same
// frames alternately, so that both see the same machine load, and reports
// each one's median time per frame, the median of the per-round ratios
// brute/clustered, and each one's MACs per frame.
func pairedSearch(b *testing.B, bk *Bank, frames [][]int8, m int) {
	pool := parallel.New(2)
	defer pool.Close()
	clustered := NewSearcher(bk, pool)
	brute := newBruteSearcher(bk, pool)
	d2, idx := make([]int32, m), make([]int32, m)
	_ = clustered.Nearest(frames[0], m, d2, idx)
	_ = brute.Nearest(frames[0], m, d2, idx)
	c0, b0 := clustered.MACs(), brute.MACs()
	var tb, tc, ratio []float64
	for i := 0; b.Loop(); i++ {
		q := frames[i%len(frames)]
		t0 := time.Now()
		_ = brute.Nearest(q, m, d2, idx)
		t1 := time.Now()
		_ = clustered.Nearest(q, m, d2, idx)
		t2 := time.Now()
		tb = append(tb, float64(t1.Sub(t0).Nanoseconds()))
		tc = append(tc, float64(t2.Sub(t1).Nanoseconds()))
		ratio = append(ratio, tb[len(tb)-1]/tc[len(tc)-1])
	}
	n := float64(len(tb))
	b.ReportMetric(median(tb), "brute-ns/frame")
	b.ReportMetric(median(tc), "clustered-ns/frame")
	b.ReportMetric(median(ratio), "brute/clustered")
	b.ReportMetric(float64(brute.MACs()-b0)/n, "brute-MACs/frame")
	b.ReportMetric(float64(clustered.MACs()-c0)/n, "clustered-MACs/frame")
	b.ReportMetric(0, "ns/op")
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// BenchmarkSearchPaired is BenchmarkSearch's ResNet18-sized synthetic case
// with brute force and clusters timed alternately (pairedSearch).
func BenchmarkSearchPaired(b *testing.B) {
	const n, dim, m = 15680, 384, 784
	vecs, good, bad := synthBank(18, n, dim, m, 8)
	bk := &Bank{Meta: Meta{Dim: dim, Count: n}, Vectors: vecs, Norms: norms(vecs, dim)}
	b.Run("resnet18-synth/good", func(b *testing.B) { pairedSearch(b, bk, good, m) })
	b.Run("resnet18-synth/anomalous", func(b *testing.B) { pairedSearch(b, bk, bad, m) })
}

// BenchmarkSearchPairedIID is the worst case for the clustered search: a
// bank of i.i.d. values (as `linesight bench`'s synthetic bank, exponential
// like pooled post-ReLU features) and queries from the same distribution,
// where no bound rules anything out.
func BenchmarkSearchPairedIID(b *testing.B) {
	const n, dim, m = 15680, 384, 784
	rng := rand.New(rand.NewPCG(1, 2))
	draw := func(k int) []int8 {
		v := make([]int8, k)
		for i := range v {
			v[i] = int8(min(127, rng.ExpFloat64()*20))
		}
		return v
	}
	vecs := draw(n * dim)
	frames := [][]int8{draw(m * dim), draw(m * dim)}
	bk := &Bank{Meta: Meta{Dim: dim, Count: n}, Vectors: vecs, Norms: norms(vecs, dim)}
	b.Run("iid-exponential", func(b *testing.B) { pairedSearch(b, bk, frames, m) })
}
