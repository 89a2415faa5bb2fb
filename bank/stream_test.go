package bank

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/linesight/linesight/internal/parallel"
)

// TestScaleFromMaxima: the scale of a whole is the scale of the largest of
// its parts' MaxAbs, as a streaming build finds it, also with zeros,
// infinities and NaNs in some part.
func TestScaleFromMaxima(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, special := range []float32{0, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), -3e38} {
		x := make([]float32, 1000)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		if special != 0 {
			x[rng.IntN(len(x))] = special
		}
		for _, cut := range [][]int{{0, 1000}, {0, 10, 500, 999, 1000}, {0, 0, 1000}} {
			var m float32
			for j := 1; j < len(cut); j++ {
				m = max(m, MaxAbs(x[cut[j-1]:cut[j]]))
			}
			if got, want := ScaleOfMax(m), ScaleFor(x); math.Float32bits(got) != math.Float32bits(want) {
				t.Errorf("special %v, parts %v: scale %v from maxima, %v from the whole", special, cut, got, want)
			}
		}
	}
	if ScaleFor(make([]float32, 8)) != 1 || ScaleFor(nil) != 1 || ScaleFor([]float32{-127}) != 1 {
		t.Errorf("scales of zeros, nothing and -127: %v %v %v", ScaleFor(make([]float32, 8)), ScaleFor(nil), ScaleFor([]float32{-127}))
	}
}

// projectOnePass is project as it was: every product kept as int32, then
// requantized.
func projectOnePass(x []int8, n, dim, pdim int, seed uint64) []int8 {
	r := make([]int8, pdim*dim)
	rng := rand.New(rand.NewPCG(seed, 0x70726f6a656374)) // "project"
	for i := range r {
		r[i] = int8(1 - 2*int(rng.Uint32()&1))
	}
	y := make([]int64, n*pdim)
	var big int64
	for i := range n {
		for j := range pdim {
			var s int64
			for d := range dim {
				s += int64(x[i*dim+d]) * int64(r[j*dim+d])
			}
			y[i*pdim+j] = s
			big = max(big, s, -s)
		}
	}
	out := make([]int8, n*pdim)
	if big == 0 {
		return out
	}
	for i, v := range y {
		out[i] = int8(math.Round(float64(v) * 127 / float64(big))) // halves away from zero
	}
	return out
}

// TestProjectTwoPasses: the blockwise two-pass projection equals the
// plain one, over and under a block, with and without a row list.
func TestProjectTwoPasses(t *testing.T) {
	for _, c := range []struct{ n, dim, pdim, threads int }{
		{1, 5, 3, 1}, {1023, 20, 7, 2}, {2500, 40, 16, 3}, {3000, 9, 4, 2},
	} {
		x := clustered(uint64(c.n), c.n, c.dim, 6)
		pool := parallel.New(c.threads)
		got, pd, err := project(x, nil, c.n, c.dim, c.pdim, 9, pool, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := projectOnePass(x, c.n, c.dim, c.pdim, 9); pd != c.pdim || !slices.Equal(got, want) {
			t.Errorf("n=%d dim=%d pdim=%d: two-pass projection differs from the one-pass one", c.n, c.dim, c.pdim)
		}
		// Every other row, backwards.
		var rows []int32
		var picked []int8
		for i := c.n - 1; i >= 0; i -= 2 {
			rows = append(rows, int32(i))
			picked = append(picked, x[i*c.dim:(i+1)*c.dim]...)
		}
		got, _, _ = project(x, rows, len(rows), c.dim, c.pdim, 9, pool, nil)
		if want := projectOnePass(picked, len(rows), c.dim, c.pdim, 9); !slices.Equal(got, want) {
			t.Errorf("n=%d dim=%d pdim=%d: projection of listed rows differs from that of their copy", c.n, c.dim, c.pdim)
		}
		pool.Close()
	}
	if got, _, _ := project(make([]int8, 40), nil, 4, 10, 3, 1, parallel.New(1), nil); slices.ContainsFunc(got, func(v int8) bool { return v != 0 }) {
		t.Errorf("zeros project to %v", got)
	}
}

// TestSelectRowsEqualsSelectOfCopy: selecting over listed rows gives the
// indices (in the list) that Select gives on a copy of those rows, with
// and without the projection; rows out of range are refused.
func TestSelectRowsEqualsSelectOfCopy(t *testing.T) {
	const n, dim = 3000, 24
	x := clustered(5, n, dim, 30)
	rng := rand.New(rand.NewPCG(3, 3))
	var rows []int32
	var picked []int8
	for i := range n {
		if rng.IntN(3) > 0 {
			rows = append(rows, int32(i))
			picked = append(picked, x[i*dim:(i+1)*dim]...)
		}
	}
	pool := parallel.New(2)
	defer pool.Close()
	for _, pd := range []int{0, 8} {
		opts := CoresetOptions{Ratio: 0.1, Seed: 4, ProjectDim: pd, Pool: pool}
		got, err := SelectRows(context.Background(), x, rows, dim, opts)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Select(context.Background(), picked, len(rows), dim, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("projection %d: SelectRows %v..., Select of the copy %v...", pd, got[:10], want[:10])
		}
	}
	for _, bad := range [][]int32{nil, {0, n}, {-1}} {
		if _, err := SelectRows(context.Background(), x, bad, dim, CoresetOptions{Ratio: 0.5}); err == nil {
			t.Errorf("rows %v accepted", bad)
		}
	}
}

// TestSelectScratch: a selection working in lent scratch (left dirty by a
// previous use) picks what it picks in buffers of its own, with and
// without the projection, over rows and over the first n, and leaves the
// points it was given as they were; scratch too short is not used.
func TestSelectScratch(t *testing.T) {
	const n, dim = 3000, 24
	x := clustered(6, n, dim, 30)
	orig := slices.Clone(x)
	rows := make([]int32, 0, n/2)
	for i := 0; i < n; i += 2 {
		rows = append(rows, int32(i))
	}
	pool := parallel.New(2)
	defer pool.Close()
	for _, pd := range []int{0, 8} {
		for _, rs := range [][]int32{nil, rows} {
			for _, size := range []int{n * dim, 10} {
				opts := CoresetOptions{Ratio: 0.1, Seed: 4, ProjectDim: pd, Pool: pool}
				sel := func() ([]int, error) {
					if rs == nil {
						return Select(context.Background(), x, n, dim, opts)
					}
					return SelectRows(context.Background(), x, rs, dim, opts)
				}
				want, err := sel()
				if err != nil {
					t.Fatal(err)
				}
				opts.Scratch = make([]int8, size)
				for i := range opts.Scratch {
					opts.Scratch[i] = int8(i*7 + 3)
				}
				got, err := sel()
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("projection %d, rows %t, scratch %d: %v..., without %v...", pd, rs != nil, size, got[:8], want[:8])
				}
				if !slices.Equal(x, orig) {
					t.Fatalf("projection %d, rows %t, scratch %d: the points changed", pd, rs != nil, size)
				}
			}
		}
	}
}

// TestPermuteRows: the in-place reordering gives the rows a copy in the
// permutation's order gives, for permutations with fixed points, long
// cycles and swaps.
func TestPermuteRows(t *testing.T) {
	const n, dim = 257, 5
	rng := rand.New(rand.NewPCG(8, 8))
	x := make([]int8, n*dim)
	for i := range x {
		x[i] = int8(rng.IntN(256) - 128)
	}
	ident := make([]int32, n)
	for i := range ident {
		ident[i] = int32(i)
	}
	swaps := slices.Clone(ident)
	for i := 0; i+1 < n; i += 2 {
		swaps[i], swaps[i+1] = swaps[i+1], swaps[i]
	}
	shift := make([]int32, n)
	for i := range shift {
		shift[i] = int32((i + 1) % n)
	}
	random := make([]int32, n)
	for i, v := range rng.Perm(n) {
		random[i] = int32(v)
	}
	for name, perm := range map[string][]int32{"identity": ident, "swaps": swaps, "one cycle": shift, "random": random} {
		want := make([]int8, n*dim)
		for r, i := range perm {
			copy(want[r*dim:(r+1)*dim], x[int(i)*dim:])
		}
		got := slices.Clone(x)
		permuteRows(got, perm, dim)
		if !slices.Equal(got, want) {
			t.Errorf("%s: reordered in place differs from the copy", name)
		}
	}
}
