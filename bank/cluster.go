package bank

import (
	"math"
	"math/bits"
	"math/rand/v2"

	"github.com/linesight/linesight/internal/parallel"
	"github.com/linesight/linesight/internal/qgemm"
)

// The clustered exact search.
//
// The bank is split into clusters around int8 centres (integer k-means,
// seeded, derived from the vectors when the Searcher is made: nothing is
// stored, so every bank ever written is searched this way). Cluster g
// keeps its centre c_g and R_g, the largest squared distance from c_g to
// a member. For a query q with D = |q − c_g|² and a best squared distance
// B found so far, every member b of g satisfies, by the triangle
// inequality,
//
//	|q − b| >= |q − c_g| − |b − c_g| >= √D − √R_g,
//
// so if √D − √R_g > √B, every member is strictly farther than the best:
// it can neither beat it nor tie it (ties go to the lower bank index, so
// a member at exactly √B must still be visited). The test is done in
// integers, with no rounding anywhere (see skip). All of D, B and R_g
// are exact integer squared distances, as the brute-force search computes
// them, because the centres are int8 vectors too.
//
// A frame is searched in two rounds so that the kernels still see blocks
// of queries against blocks of bank vectors: round one visits, for every
// query, the cluster whose centre is nearest (it usually holds the nearest
// vector or one close to it); round two visits every other cluster the
// bound cannot rule out against that round's best. Both rounds are
// grouped by cluster: each visited cluster is multiplied once by all the
// queries that visit it. Each visit gives that cluster's nearest member
// (lowest index on ties, as members are kept in increasing bank order),
// and visits merge by (distance, index), so the result is the brute
// force's to the bit, whatever the clustering: the clustering only decides
// how much work is skipped.

// clusterMinCount is the smallest bank searched by clusters: below it the
// centres cost about as much as the bank, and brute force is as fast.
const clusterMinCount = 4096

// clusterSize is the average cluster the k-means aims at. Smaller clusters
// have tighter radii and skip more MACs (64: 12x fewer than brute force on
// the synthetic ResNet18 bank, 256: 9x), but each visit then carries a
// fixed cost (gathering rows, reading out lane minima) that a 64-column
// visit does not amortize: 256 was the fastest in paired runs
// (BenchmarkSearchPaired: 64 2.8x, 128 3.9x, 256 5.4x, 512 2.5x).
const clusterSize = 256

// kmeansIters is the number of Lloyd iterations of the clustering.
const kmeansIters = 6

// clusterIndex is a bank's clusters, in the kernel's layout.
type clusterIndex struct {
	nc    int
	cent  *Bank           // the centres as a bank (int8 vectors and norms)
	cpk   *qgemm.Packed   // the centres, packed
	rad2  []int64         // R_g: largest squared member distance to centre g
	start []int           // members of g: perm[start[g]:start[g+1]]
	perm  []int32         // bank indices, cluster by cluster, increasing within one
	bn    []int32         // their norms, in perm's order
	pk    []*qgemm.Packed // members of each cluster, packed
}

// newClusterIndex clusters b, or returns nil when b is too small for it to
// pay. The result depends only on the vectors (a fixed seed, integer
// arithmetic): the same on every machine and thread count.
func newClusterIndex(b *Bank, pool *parallel.Pool) *clusterIndex {
	n, dim := b.Meta.Count, b.Meta.Dim
	if n < clusterMinCount {
		return nil
	}
	nc := n / clusterSize
	cent := make([]int8, nc*dim)
	// Distinct seeded rows as the first centres.
	rng := rand.New(rand.NewPCG(0x636c7573, 0x74657273)) // "clusters"
	for g, i := range rng.Perm(n)[:nc] {
		copy(cent[g*dim:(g+1)*dim], b.Row(i))
	}
	assign := make([]int32, n)
	d2 := make([]int32, n)
	sums := make([]int64, nc*dim)
	count := make([]int, nc)
	for it := 0; ; it++ {
		cb := &Bank{Meta: Meta{Dim: dim, Count: nc}, Vectors: cent, Norms: norms(cent, dim)}
		s := newBruteSearcher(cb, pool)
		// Sizes are consistent by construction: Nearest cannot fail.
		for lo := 0; lo < n; lo += 4096 {
			m := min(4096, n-lo)
			_ = s.Nearest(b.Vectors[lo*dim:(lo+m)*dim], m, d2[lo:lo+m], assign[lo:lo+m])
		}
		if it == kmeansIters {
			break
		}
		// New centres: each cluster's mean, rounded half away from zero in
		// integers; an empty cluster keeps its centre.
		clear(sums)
		clear(count)
		for i, g := range assign {
			count[g]++
			row, sum := b.Row(i), sums[int(g)*dim:(int(g)+1)*dim]
			for t, v := range row {
				sum[t] += int64(v)
			}
		}
		for g := range nc {
			c := int64(count[g])
			if c == 0 {
				continue
			}
			for t, s := range sums[g*dim : (g+1)*dim] {
				q := (2*abs64(s) + c) / (2 * c)
				if s < 0 {
					q = -q
				}
				cent[g*dim+t] = int8(q) // a mean of int8 values is in range
			}
		}
	}
	// Drop the clusters nothing was assigned to (renumbering the rest in
	// order), so that every cluster the search meets has members.
	clear(count)
	for _, g := range assign {
		count[g]++
	}
	renum := make([]int32, nc)
	kept := 0
	for g := range nc {
		renum[g] = int32(kept)
		if count[g] > 0 {
			copy(cent[kept*dim:(kept+1)*dim], cent[g*dim:(g+1)*dim])
			kept++
		}
	}
	nc, cent = kept, cent[:kept*dim]
	for i, g := range assign {
		assign[i] = renum[g]
	}
	count = count[:nc]
	ci := &clusterIndex{nc: nc, rad2: make([]int64, nc), start: make([]int, nc+1),
		perm: make([]int32, n), bn: make([]int32, n), pk: make([]*qgemm.Packed, nc)}
	ci.cent = &Bank{Meta: Meta{Dim: dim, Count: nc}, Vectors: cent, Norms: norms(cent, dim)}
	var err error
	if ci.cpk, err = qgemm.Pack(nc, dim, cent, dim); err != nil {
		return nil // brute force, which packs the same way or runs portably
	}
	clear(count)
	for i, g := range assign {
		count[g]++
		ci.rad2[g] = max(ci.rad2[g], int64(d2[i]))
	}
	for g := range nc {
		ci.start[g+1] = ci.start[g] + count[g]
	}
	fill := append([]int(nil), ci.start[:nc]...)
	for i, g := range assign { // increasing i: members stay in bank order
		ci.perm[fill[g]] = int32(i)
		ci.bn[fill[g]] = b.Norms[i]
		fill[g]++
	}
	vec := make([]int8, 0, clusterSize*2*dim)
	for g := range nc {
		vec = vec[:0]
		for _, i := range ci.perm[ci.start[g]:ci.start[g+1]] {
			vec = append(vec, b.Row(int(i))...)
		}
		if ci.pk[g], err = qgemm.Pack(count[g], dim, vec, dim); err != nil {
			return nil
		}
	}
	return ci
}

// skip reports whether a cluster with R = rad2 and a query at squared
// distance d from its centre can be left out when the best squared distance
// so far is best: whether √d − √R > √best, decided exactly. Squaring the
// equivalent √d > √best + √R (both sides >= 0) gives
// d > best + R + 2·√(best·R), that is t = d − best − R > 2·√(best·R),
// which holds iff t > 0 and t² > 4·best·R. Both products are formed in
// 128 bits (t < 2^35, 4·best < 2^35, R < 2^33 for any Dim <= MaxDim), so
// nothing rounds or overflows.
func skip(d, best, rad2 int64) bool {
	t := d - best - rad2
	if t <= 0 {
		return false
	}
	h1, l1 := bits.Mul64(uint64(t), uint64(t))
	h2, l2 := bits.Mul64(uint64(4*best), uint64(rad2))
	return h1 > h2 || (h1 == h2 && l1 > l2)
}

// lowerBound is √d − √R, for ordering clusters only (never for skipping).
func lowerBound(d, rad2 int64) float64 {
	return math.Sqrt(float64(d)) - math.Sqrt(float64(rad2))
}
