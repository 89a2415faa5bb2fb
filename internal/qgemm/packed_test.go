package qgemm

import (
	"fmt"
	"math/rand"
	"testing"
)

const canary = int32(-0x5a5a5a5a)

func fill(r *rand.Rand, x []int8, mode int) {
	for i := range x {
		switch mode {
		case 0:
			x[i] = int8(r.Intn(256) - 128)
		case 1: // the extremes only: every product at its largest magnitude
			x[i] = []int8{-128, 127}[r.Intn(2)]
		case 2:
			x[i] = -128
		}
	}
}

// check runs every implementation on the machine over one shape and
// compares with the definition bit for bit, with A and C at unaligned
// offsets and canaries around and between C's rows.
func check(t *testing.T, r *rand.Rand, m, n, k, mode int) {
	t.Helper()
	aoff, lda := r.Intn(4), k+r.Intn(3)
	ldb := k + r.Intn(3)
	a := make([]int8, aoff+max(0, (m-1)*lda+k))[aoff:]
	b := make([]int8, max(0, (n-1)*ldb+k))
	fill(r, a, mode)
	fill(r, b, mode)
	want := naive(m, n, k, a, lda, b, ldb)
	for _, im := range impls {
		p, err := packWith(im, n, k, b, ldb, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Whole matrix, then the column ranges a blocked caller would use.
		ranges := [][2]int{{0, n}}
		if n > BlockCols {
			ranges = append(ranges, [2]int{BlockCols, n - BlockCols}, [2]int{0, BlockCols})
		}
		for _, rg := range ranges {
			col0, ncol := rg[0], rg[1]
			coff, ldc := 1+r.Intn(3), ncol+r.Intn(3)
			buf := make([]int32, coff+m*ldc+4)
			for i := range buf {
				buf[i] = canary
			}
			c := buf[coff : coff+(m-1)*ldc+ncol]
			if err := p.GemmCols(m, a, lda, col0, ncol, c, ldc); err != nil {
				t.Fatalf("%s m=%d n=%d k=%d cols %d+%d: %v", im.name, m, n, k, col0, ncol, err)
			}
			for i := range buf {
				inC := i >= coff && (i-coff)/ldc < m && (i-coff)%ldc < ncol
				if !inC {
					if buf[i] != canary {
						t.Fatalf("%s m=%d n=%d k=%d cols %d+%d: wrote outside C at %d", im.name, m, n, k, col0, ncol, i-coff)
					}
					continue
				}
				row, col := (i-coff)/ldc, (i-coff)%ldc
				if got, w := buf[i], want[row*n+col0+col]; got != w {
					t.Fatalf("%s m=%d n=%d k=%d lda=%d cols %d+%d mode %d: c[%d][%d] = %d, want %d", im.name, m, n, k, lda, col0, ncol, mode, row, col, got, w)
				}
			}
		}
	}
}

func TestPackedMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	ms := []int{1, 2, 3, 5, 6, 7, 12, 13, 37}
	ns := []int{1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 100, 128, 129, 200}
	ks := []int{0, 1, 2, 3, 4, 5, 7, 8, 63, 64, 65, 66, 67, 128, 147, 300, 576}
	for _, m := range ms {
		for _, n := range ns {
			for _, k := range ks {
				check(t, r, m, n, k, (m+n+k)%3)
			}
		}
	}
	avail, used := Kernels()
	t.Logf("implementations here: %v (Pack uses %s)", avail, used)
}

// TestPackedLongestK: at k = MaxK every product at ±128·127 or 128·128
// must still come out exact (VNNI's biased bytes reach 255·128·MaxK).
func TestPackedLongestK(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for mode := 1; mode <= 2; mode++ {
		check(t, r, 7, 20, MaxK, mode)
	}
}

func TestPackRejects(t *testing.T) {
	if _, err := Pack(2, MaxK+1, make([]int8, 2*(MaxK+1)), MaxK+1); err == nil {
		t.Error("k > MaxK accepted")
	}
	if _, err := Pack(3, 4, make([]int8, 11), 4); err == nil {
		t.Error("short b accepted")
	}
	p, _ := Pack(100, 8, make([]int8, 800), 8)
	c := make([]int32, 100)
	if err := p.GemmCols(1, make([]int8, 8), 8, 10, 54, c, 100); err == nil {
		t.Error("unaligned column range accepted")
	}
	if err := p.GemmCols(2, make([]int8, 15), 8, 0, 100, c, 100); err == nil {
		t.Error("short a accepted")
	}
	if err := p.GemmCols(2, make([]int8, 16), 8, 0, 100, c, 100); err == nil {
		t.Error("short c accepted")
	}
}

// FuzzPackedGemm: every implementation equals the definition on shapes and
// values taken from the input.
func FuzzPackedGemm(f *testing.F) {
	f.Add([]byte{3, 17, 9, 0x80, 0x7f, 1, 2, 3})
	f.Add([]byte{6, 64, 4, 0x80, 0x80, 0x80, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		m, n, k := int(data[0])%20+1, int(data[1])%140+1, int(data[2])%80
		vals := data[3:]
		if len(vals) == 0 {
			vals = []byte{0}
		}
		a := make([]int8, m*k)
		b := make([]int8, n*k)
		for i := range a {
			a[i] = int8(vals[i%len(vals)])
		}
		for i := range b {
			b[i] = int8(vals[(i*7+3)%len(vals)])
		}
		want := naive(m, n, k, a, k, b, k)
		for _, im := range impls {
			p, err := packWith(im, n, k, b, k, nil)
			if err != nil {
				t.Fatal(err)
			}
			c := make([]int32, m*n)
			if err := p.Gemm(m, a, k, c, n); err != nil {
				t.Fatal(err)
			}
			for i := range c {
				if c[i] != want[i] {
					t.Fatalf("%s m=%d n=%d k=%d: c[%d] = %d, want %d", im.name, m, n, k, i, c[i], want[i])
				}
			}
		}
	})
}

func TestPackedAllocatesNothing(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	m, n, k := 32, 192, 288
	a, b := make([]int8, m*k), make([]int8, n*k)
	fill(r, a, 0)
	fill(r, b, 0)
	c := make([]int32, m*n)
	for _, im := range impls {
		p, _ := packWith(im, n, k, b, k, nil)
		if allocs := testing.AllocsPerRun(20, func() { _ = p.Gemm(m, a, k, c, n) }); allocs != 0 {
			t.Errorf("%s: %.1f allocations per Gemm", im.name, allocs)
		}
	}
}

func BenchmarkPacked(b *testing.B) {
	r := rand.New(rand.NewSource(4))
	for _, sh := range [][3]int{{784, 256, 1152}, {784, 16384, 384}, {3136, 64, 576}, {48, 64, 576}, {12544, 64, 148}, {196, 256, 2304}} {
		m, n, k := sh[0], sh[1], sh[2]
		a, bb := make([]int8, m*k), make([]int8, n*k)
		fill(r, a, 0)
		fill(r, bb, 0)
		c := make([]int32, m*min(n, 1024))
		for _, im := range impls {
			p, _ := packWith(im, n, k, bb, k, nil)
			b.Run(fmt.Sprintf("%s/%dx%dx%d", im.name, m, n, k), func(b *testing.B) {
				for range b.N {
					for j0 := 0; j0 < n; j0 += 1024 {
						nc := min(1024, n-j0)
						_ = p.GemmCols(m, a, k, j0, nc, c, nc)
					}
				}
				b.ReportMetric(float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
			})
		}
	}
}
