package bank

import (
	"context"
	"fmt"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/sampleline"
)

// The coreset stress sets: what made the grouped selection degrade to
// nearly its O(n·k) loop. "texture" is patches of the sample line's
// textured surfaces (the washer on its belt, and strips) as raw pixels:
// 4×8 RGB windows at stride 2, each less its mean, so that the features
// are texture and noise with little cluster structure; "noise" is i.i.d.
// Gaussian values, no structure at all, the worst case for any pruning.

// texturePatches returns n patches of 96 values from sample-line images
// written to a temporary folder.
func texturePatches(tb testing.TB, n int) []int8 {
	tb.Helper()
	dir := tb.TempDir()
	// A washer frame gives 15,875 patches, a strip 155,376: draw no more
	// frames than n needs (300,000: 12 washers and a strip).
	washers := min(12, n/15875+1)
	if err := sampleline.WriteKind(filepath.Join(dir, "w"), sampleline.KindWasher, sampleline.Counts{Train: washers}, 5); err != nil {
		tb.Fatal(err)
	}
	if n > 12*15875 {
		if err := sampleline.WriteKind(filepath.Join(dir, "s"), sampleline.KindStrip, sampleline.Counts{Train: 3}, 6); err != nil {
			tb.Fatal(err)
		}
	}
	var files []string
	for _, sub := range []string{"w", "s"} {
		ms, _ := filepath.Glob(filepath.Join(dir, sub, "train/good/*.png"))
		files = append(files, ms...)
	}
	const pw, ph, dim = 8, 4, 96
	out := make([]int8, 0, n*dim)
	var win [dim]int32
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			tb.Fatal(err)
		}
		img, err := png.Decode(r)
		r.Close()
		if err != nil {
			tb.Fatal(err)
		}
		bnd := img.Bounds()
		for y := bnd.Min.Y; y+ph <= bnd.Max.Y; y += 2 {
			for x := bnd.Min.X; x+pw <= bnd.Max.X; x += 2 {
				var sum int32
				t := 0
				for dy := range ph {
					for dx := range pw {
						cr, cg, cb, _ := img.At(x+dx, y+dy).RGBA()
						for _, c := range []uint32{cr >> 8, cg >> 8, cb >> 8} {
							win[t] = int32(c)
							sum += int32(c)
							t++
						}
					}
				}
				mean := sum / dim
				for _, v := range win {
					out = append(out, int8(max(-127, min(127, v-mean))))
				}
				if len(out) == n*dim {
					return out
				}
			}
		}
	}
	tb.Fatalf("sample line gave %d patches, want %d", len(out)/dim, n)
	return nil
}

// noisePatches returns n vectors of dim i.i.d. Gaussian values (σ = 30).
func noisePatches(seed uint64, n, dim int) []int8 {
	rng := rand.New(rand.NewPCG(seed, 9))
	x := make([]int8, n*dim)
	for i := range x {
		x[i] = int8(max(-127, min(127, math.Round(30*rng.NormFloat64()))))
	}
	return x
}

// TestLazyMatchesGrouped checks the lazy blocked selection against the
// grouped one it replaced and the plain loop, on the stress sets' kinds of
// data, several blocks large, on 1 and 3 threads.
func TestLazyMatchesGrouped(t *testing.T) {
	for _, c := range []struct {
		name string
		x    []int8
		dim  int
	}{
		{"texture", texturePatches(t, 6000), 96},
		{"noise", noisePatches(1, 5000, 16), 16},
		// k = 2,000: centres in a full segment of kcSuper, the open one and
		// a partial chunk.
		{"noise-long", noisePatches(5, 20000, 4), 4},
		{"clustered", clustered(3, 7000, 24, 30), 24},
		{"duplicates", func() []int8 { // 40 distinct vectors, many times each
			x := clustered(4, 40, 8, 5)
			out := make([]int8, 0, 3000*8)
			for i := range 3000 {
				out = append(out, x[(i*7%40)*8:(i*7%40+1)*8]...)
			}
			return out
		}(), 8},
	} {
		if testing.Short() && (c.name == "texture" || c.name == "noise-long") {
			continue // the slow cases (make test-qemu runs -short under emulation)
		}
		n := len(c.x) / c.dim
		k := n / 10
		ctx := context.Background()
		want := selectPlain(c.x, n, c.dim, k, 17)
		pool := parallel.New(2)
		old, err := selectGroupedFrom(ctx, c.x, n, c.dim, k, 17, pool)
		pool.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, threads := range []int{1, 3} {
			pool := parallel.New(threads)
			got, err := selectLazy(ctx, c.x, n, c.dim, k, 17, pool, nil)
			pool.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) || !slices.Equal(old, want) {
				t.Fatalf("%s, %d threads: lazy %v…, grouped %v…, plain %v…", c.name, threads, got[:min(12, len(got))], old[:min(12, len(old))], want[:min(12, len(want))])
			}
		}
		t.Logf("%s: %d of %d selected alike by plain, grouped and lazy", c.name, len(want), n)
	}
}

// BenchmarkCoreset times the grouped selection (before issue 22) and the
// lazy blocked one on the stress sets, 2 threads, 10% kept, no
// projection: n = 300,000. Each b.N is one whole selection.
func BenchmarkCoreset(b *testing.B) {
	const n = 300_000
	sets := []struct {
		name string
		dim  int
		x    func() []int8
	}{
		{"texture-96", 96, func() []int8 { return texturePatches(b, n) }},
		{"noise-96", 96, func() []int8 { return noisePatches(2, n, 96) }},
		{"noise-384", 384, func() []int8 { return noisePatches(3, n, 384) }},
	}
	for _, set := range sets {
		var x []int8
		for _, algo := range []string{"grouped", "lazy"} {
			b.Run(fmt.Sprintf("%s/%s", set.name, algo), func(b *testing.B) {
				if x == nil {
					x = set.x()
				}
				pool := parallel.New(2)
				defer pool.Close()
				k := CoresetSize(n, 0.1, 0)
				for b.Loop() {
					t0, c0 := time.Now(), cpuTime()
					var err error
					var macs int64
					if algo == "grouped" {
						groupedDists.Store(0)
						_, err = selectGroupedFrom(context.Background(), x, n, set.dim, k, 1, pool)
						macs = groupedDists.Load() * int64(set.dim)
					} else {
						_, macs, err = selectLazyWork(context.Background(), x, n, set.dim, k, 1, pool, nil)
					}
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(time.Since(t0).Seconds(), "s/select")
					// The process's CPU seconds: on a machine shared with
					// other jobs, wall time measures the load as much as
					// the selection.
					b.ReportMetric((cpuTime() - c0).Seconds(), "cpu-s/select")
					b.ReportMetric(float64(macs)/1e9, "GMAC/select")
					b.ReportMetric(float64(macs)/(float64(n)*float64(k)*float64(set.dim)), "MACs/plain")
				}
			})
		}
	}
}
