package bank

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/linesight/linesight/internal/parallel"
)

// naiveNearest is the definition the searches must meet: exact squared
// distances summed element by element, the lowest index on ties.
func naiveNearest(b *Bank, q []int8) (int32, int32) {
	dim := b.Meta.Dim
	best, bi := int64(-1), int32(-1)
	for j := range b.Meta.Count {
		var d int64
		for t, v := range b.Row(j) {
			e := int64(q[t]) - int64(v)
			d += e * e
		}
		if bi < 0 || d < best {
			best, bi = d, int32(j)
		}
	}
	_ = dim
	return int32(best), bi
}

func mustBank(t testing.TB, vecs []int8, dim int) *Bank {
	t.Helper()
	// Only what the Searcher reads: dimensions, vectors, norms.
	return &Bank{Meta: Meta{Dim: dim, Count: len(vecs) / dim}, Vectors: vecs, Norms: norms(vecs, dim)}
}

// searchCase is a bank and queries with the structure a test wants.
type searchCase struct {
	name     string
	dim      int
	bank, qs []int8
}

// nearQueries draws m queries: most a bank vector moved by up to ±noise
// per value (good patches), every fifth uniform over the int8 range
// (anomalies).
func nearQueries(rng *rand.Rand, bank []int8, dim, m, noise int) []int8 {
	n := len(bank) / dim
	q := make([]int8, m*dim)
	for i := range m {
		row := q[i*dim : (i+1)*dim]
		if i%5 == 4 {
			for t := range row {
				row[t] = int8(rng.IntN(256) - 128)
			}
			continue
		}
		src := bank[rng.IntN(n)*dim:]
		for t := range row {
			row[t] = int8(max(-128, min(127, int(src[t])+rng.IntN(2*noise+1)-noise)))
		}
	}
	return q
}

func searchCases() []searchCase {
	rng := rand.New(rand.NewPCG(22, 1))
	var cs []searchCase
	// Structured: groups with spread and duplicates.
	{
		dim := 48
		b := clustered(5, 6000, dim, 40)
		cs = append(cs, searchCase{"clustered", dim, b, nearQueries(rng, b, dim, 300, 6)})
	}
	// Uniform random: no structure at all, the bound rules little out.
	{
		dim := 20
		b := make([]int8, 5000*dim)
		for i := range b {
			b[i] = int8(rng.IntN(256) - 128)
		}
		cs = append(cs, searchCase{"uniform", dim, b, nearQueries(rng, b, dim, 200, 20)})
	}
	// Ties: only a few distinct vectors, each many times, and queries
	// exactly on them or halfway between two (equal distances to both).
	{
		dim := 16
		distinct := make([]int8, 7*dim)
		for i := range distinct {
			distinct[i] = int8(2 * (rng.IntN(61) - 30))
		}
		b := make([]int8, 4500*dim)
		for i := range 4500 {
			copy(b[i*dim:(i+1)*dim], distinct[rng.IntN(7)*dim:])
		}
		q := make([]int8, 100*dim)
		for i := range 100 {
			x, y := distinct[rng.IntN(7)*dim:], distinct[rng.IntN(7)*dim:]
			for t := range dim {
				if i%2 == 0 {
					q[i*dim+t] = x[t]
				} else {
					q[i*dim+t] = int8((int(x[t]) + int(y[t])) / 2)
				}
			}
		}
		cs = append(cs, searchCase{"ties", dim, b, q})
	}
	// All equal: one vector 4100 times.
	{
		dim := 12
		b := make([]int8, 4100*dim)
		for i := range b {
			b[i] = int8(i%dim) - 6
		}
		cs = append(cs, searchCase{"all-equal", dim, b, nearQueries(rng, b, dim, 50, 3)})
	}
	// Extreme values: only -128 and 127, the largest distances there are.
	{
		dim := 64
		b := make([]int8, 4200*dim)
		for i := range b {
			b[i] = int8([]int{-128, 127}[rng.IntN(2)])
		}
		q := make([]int8, 60*dim)
		for i := range q {
			q[i] = int8([]int{-128, 127, 0}[rng.IntN(3)])
		}
		copy(q, b[:10*dim])
		cs = append(cs, searchCase{"extremes", dim, b, q})
	}
	return cs
}

// TestClusteredMatchesBrute checks the clustered search against brute
// force and against the naive definition, on several thread counts, for
// banks and queries built to be hard for it (see searchCases).
func TestClusteredMatchesBrute(t *testing.T) {
	for _, c := range searchCases() {
		b := mustBank(t, c.bank, c.dim)
		m := len(c.qs) / c.dim
		wantD, wantI := make([]int32, m), make([]int32, m)
		for i := range m {
			wantD[i], wantI[i] = naiveNearest(b, c.qs[i*c.dim:(i+1)*c.dim])
		}
		for _, threads := range []int{1, 2, 3} {
			pool := parallel.New(threads)
			s := NewSearcher(b, pool)
			if s.ci == nil {
				t.Fatalf("%s: %d vectors were not clustered", c.name, b.Meta.Count)
			}
			bf := newBruteSearcher(b, pool)
			gotD, gotI := make([]int32, m), make([]int32, m)
			bD, bI := make([]int32, m), make([]int32, m)
			// Twice: the second call reuses the scratch.
			for range 2 {
				if err := s.Nearest(c.qs, m, gotD, gotI); err != nil {
					t.Fatal(err)
				}
			}
			if err := bf.Nearest(c.qs, m, bD, bI); err != nil {
				t.Fatal(err)
			}
			for i := range m {
				if gotD[i] != wantD[i] || gotI[i] != wantI[i] || bD[i] != wantD[i] || bI[i] != wantI[i] {
					t.Fatalf("%s, %d threads, query %d: clustered (%d, #%d), brute (%d, #%d), naive (%d, #%d)",
						c.name, threads, i, gotD[i], gotI[i], bD[i], bI[i], wantD[i], wantI[i])
				}
			}
			full := int64(2*m) * int64(b.Meta.Count) * int64(c.dim)
			t.Logf("%s, %d threads: %d queries, clustered search did %.1f%% of brute force's MACs", c.name, threads, m, 100*float64(s.MACs())/float64(full))
			pool.Close()
		}
	}
}

// TestClusterRadii checks the premise of the bound: every member is within
// its cluster's radius, every vector is in exactly one cluster, members
// are in increasing bank order.
func TestClusterRadii(t *testing.T) {
	for _, c := range searchCases() {
		b := mustBank(t, c.bank, c.dim)
		ci := newClusterIndex(b, nil2pool(t))
		seen := make([]bool, b.Meta.Count)
		for g := range ci.nc {
			cent := ci.cent.Row(g)
			prev := int32(-1)
			for _, i := range ci.perm[ci.start[g]:ci.start[g+1]] {
				if seen[i] || i <= prev {
					t.Fatalf("%s: vector %d twice or out of order in cluster %d", c.name, i, g)
				}
				seen[i], prev = true, i
				var d int64
				for k, v := range b.Row(int(i)) {
					e := int64(v) - int64(cent[k])
					d += e * e
				}
				if d > ci.rad2[g] {
					t.Fatalf("%s: vector %d at %d from centre %d, radius %d", c.name, i, d, g, ci.rad2[g])
				}
			}
		}
		for i, ok := range seen {
			if !ok {
				t.Fatalf("%s: vector %d in no cluster", c.name, i)
			}
		}
	}
}

func nil2pool(t *testing.T) *parallel.Pool {
	p := parallel.New(2)
	t.Cleanup(p.Close)
	return p
}

// TestSkipExact checks skip against √d − √R > √b evaluated with 256-bit
// square roots, on every small triple (perfect squares give the equality
// cases, which must not skip) and on random large ones.
func TestSkipExact(t *testing.T) {
	ref := func(d, b, r int64) bool {
		sq := func(v int64) *big.Float {
			return new(big.Float).SetPrec(256).Sqrt(new(big.Float).SetPrec(256).SetInt64(v))
		}
		lhs := new(big.Float).SetPrec(256).Sub(sq(d), sq(r))
		// Equality cases come out exact only when all three are perfect
		// squares; otherwise the roots differ far above 2^-200.
		diff := new(big.Float).SetPrec(256).Sub(lhs, sq(b))
		eps := new(big.Float).SetPrec(256).SetMantExp(big.NewFloat(1), -200)
		return diff.Cmp(eps) > 0
	}
	for d := int64(0); d <= 40; d++ {
		for b := int64(0); b <= 40; b++ {
			for r := int64(0); r <= 40; r++ {
				if got, want := skip(d, b, r), ref(d, b, r); got != want {
					t.Fatalf("skip(%d, %d, %d) = %v, want %v", d, b, r, got, want)
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	big := int64(MaxDim) * 255 * 255
	for range 20000 {
		d, b, r := rng.Int64N(big+1), rng.Int64N(big+1), rng.Int64N(big+1)
		if rng.IntN(4) == 0 { // near the boundary: √d = √b + √r + small
			x, y := rng.Int64N(20000), rng.Int64N(20000)
			b, r, d = x*x, y*y, (x+y)*(x+y)+rng.Int64N(3)-1
		}
		if got, want := skip(d, b, r), ref(d, b, r); got != want {
			t.Fatalf("skip(%d, %d, %d) = %v, want %v", d, b, r, got, want)
		}
	}
	if math.MaxInt64/4 < big {
		t.Fatal("unreachable")
	}
}

func TestClusteredAllocs(t *testing.T) {
	c := searchCases()[0]
	b := mustBank(t, c.bank, c.dim)
	pool := parallel.New(2)
	defer pool.Close()
	s := NewSearcher(b, pool)
	m := len(c.qs) / c.dim
	d, i := make([]int32, m), make([]int32, m)
	_ = s.Nearest(c.qs, m, d, i)
	if a := testing.AllocsPerRun(5, func() { _ = s.Nearest(c.qs, m, d, i) }); a != 0 {
		t.Errorf("%v allocations per call after warm-up", a)
	}
}

// TestClusteredLargeBatch checks a call of more queries than one clustered
// pass takes (tiled frames): it is split, with the same results as brute
// force, and smaller calls after it still agree.
func TestClusteredLargeBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	dim := 16
	vecs := clustered(9, 5000, dim, 25)
	b := mustBank(t, vecs, dim)
	pool := parallel.New(2)
	defer pool.Close()
	s, bf := NewSearcher(b, pool), newBruteSearcher(b, pool)
	for _, m := range []int{2*clusterQueries + 123, 50} {
		q := nearQueries(rng, vecs, dim, m, 5)
		d, i, bd, bi := make([]int32, m), make([]int32, m), make([]int32, m), make([]int32, m)
		if err := s.Nearest(q, m, d, i); err != nil {
			t.Fatal(err)
		}
		_ = bf.Nearest(q, m, bd, bi)
		for r := range m {
			if d[r] != bd[r] || i[r] != bi[r] {
				t.Fatalf("%d queries, query %d: clustered (%d, #%d), brute (%d, #%d)", m, r, d[r], i[r], bd[r], bi[r])
			}
		}
	}
}
