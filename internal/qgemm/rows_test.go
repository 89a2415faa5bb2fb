package qgemm

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/linesight/linesight/internal/vec"
)

func TestGemmRowsRequantRejectsBadRows(t *testing.T) {
	q, err := vec.NewRequant(make([]int32, 4), []int32{1 << 30, 1 << 30, 1 << 30, 1 << 30}, make([]int, 4), 0, -128, 127)
	if err != nil {
		t.Fatal(err)
	}
	// k = 24: a multiple of every kernel's k granularity (PackOffsetA).
	p, err := PackOffsetA(4, 24, make([]int8, 96), 24, q)
	if err != nil {
		t.Fatal(err)
	}
	a, out := make([]int8, 60), make([]int8, 8)
	for _, r := range []Rows{
		{A: a, AOff: []int32{0}, SegLen: 8, Seg: 2, SegStride: 8},       // k = 16, not 24
		{A: a, AOff: []int32{0}, SegLen: 8, Seg: 3, SegStride: -2},      // negative stride
		{A: a, AOff: []int32{40}, SegLen: 8, Seg: 3, SegStride: 10},     // past the end of A
		{A: a, AOff: []int32{-1}, SegLen: 8, Seg: 3, SegStride: 8},      // negative offset
		{A: a, AOff: []int32{0, 1, 2}, SegLen: 8, Seg: 3, SegStride: 8}, // out too short
	} {
		if err := p.GemmRowsRequant(&r, out, 4); err == nil {
			t.Errorf("GemmRowsRequant accepted %+v", r)
		}
	}
}

// TestGemmRowsRequantMatchesDefinition: the fused kernel (rows of offset
// bytes in segments, B signed, requantized in registers) equals the plain
// sum Σ (x+128)·w of the same rows followed by the requantization
// (vec.Requant, whose every implementation equals its definition: vec's
// tests), for every kernel, on row and column tails, extreme values, exact
// rounding ties and left shifts; out is written only in its rows' first N
// columns. Without the VNNI kernel the rows go through the signed GEMM
// with 128·Σw added back, which this checks as well.
func TestGemmRowsRequantMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewSource(12))
	for _, im := range impls {
		for _, sh := range []struct{ segLen, seg, stride, n, m int }{
			{192, 3, 58 * 64, 64, 13}, // ResNet18 layer1, padded input
			{24, 7, 230 * 3, 64, 11},  // the stem: 21 bytes a filter row, 3 read past it
			{64, 1, 64, 128, 7},       // a 1x1 stride-2 convolution
			{12, 3, 40, 100, 1},
			{16, 1, 16, 17, 6},
			{8, 5, 9, 130, 20},
			{4, 10, 6, 20, 7},
			{12, 2, 14, 1, 3},
			{8, 3, 6, 16, 5},  // overlapping segments (filter rows of 6 read as 8)
			{6, 4, 10, 20, 5}, // segments not a multiple of 4: rows copied out first
		} {
			if im.kAlign > 1 && sh.segLen*sh.seg%im.kAlign != 0 {
				continue
			}
			for mode := range 3 {
				k := sh.segLen * sh.seg
				b := make([]int8, sh.n*k)
				fill(r, b, mode)
				bias, mult, shift := make([]int32, sh.n), make([]int32, sh.n), make([]int, sh.n)
				for c := range sh.n {
					bias[c] = int32(r.Intn(1<<20)) - 1<<19
					mult[c] = 1<<30 + int32(r.Intn(1<<30))
					shift[c] = r.Intn(20) - 18
					switch c % 6 {
					case 1:
						mult[c] = 1 << 30 // ties of the doubling high multiply
					case 2:
						shift[c] = r.Intn(3) // left shifts
					case 3:
						mult[c] = 1<<31 - 1
					}
				}
				zo := int32(r.Intn(256)) - 128
				lo, hi := int32(-128), int32(127)
				switch mode {
				case 1:
					lo = zo // a ReLU's clamp
				case 2:
					lo, hi = max(-128, zo-30), min(127, zo+30) // a ReLU6-like band
				}
				q, err := vec.NewRequant(bias, mult, shift, zo, lo, hi)
				if err != nil {
					t.Fatal(err)
				}
				p, err := packWith(im, sh.n, k, b, k, q)
				if err != nil {
					t.Fatal(err)
				}
				span := (sh.seg-1)*sh.stride + sh.segLen
				a := make([]int8, span+3*sh.m+50)
				fill(r, a, mode)
				rows := Rows{A: a, SegLen: sh.segLen, Seg: sh.seg, SegStride: sh.stride}
				want := make([]int8, sh.m*sh.n)
				acc := make([]int32, sh.n)
				for i := range sh.m {
					off := r.Intn(len(a) - span + 1)
					rows.AOff = append(rows.AOff, int32(off))
					for j := range sh.n {
						var s int32
						for sg := range sh.seg {
							for t, x := range a[off+sg*sh.stride : off+sg*sh.stride+sh.segLen] {
								s += int32(uint8(x)) * int32(b[j*k+sg*sh.segLen+t])
							}
						}
						acc[j] = s
					}
					q.Row(acc, want[i*sh.n:(i+1)*sh.n])
				}
				ldo := sh.n + 5
				out := make([]int8, sh.m*ldo)
				for i := range out {
					out[i] = 0x5a // canary
				}
				if err := p.GemmRowsRequant(&rows, out, ldo); err != nil {
					t.Fatal(err)
				}
				for i := range sh.m {
					for j := range ldo {
						got := out[i*ldo+j]
						if j >= sh.n {
							if got != 0x5a {
								t.Fatalf("%s %+v: out[%d][%d] past N changed to %d", im.name, sh, i, j, got)
							}
							continue
						}
						if got != want[i*sh.n+j] {
							t.Fatalf("%s %+v mode %d: out[%d][%d] = %d, want %d", im.name, sh, mode, i, j, got, want[i*sh.n+j])
						}
					}
				}
				// Column ranges (GemmRowsRequantCols): every range of
				// whole blocks, the last one ending at N; out holds
				// the range only, with canaries past it.
				for c0 := 0; c0 < sh.n; c0 += BlockCols {
					for c1 := c0 + BlockCols; ; c1 += BlockCols {
						c1 = min(c1, sh.n)
						nc := c1 - c0
						ldc := nc + 3
						part := make([]int8, sh.m*ldc)
						for i := range part {
							part[i] = 0x5a
						}
						if err := p.GemmRowsRequantCols(&rows, c0, nc, part, ldc); err != nil {
							t.Fatal(err)
						}
						for i := range sh.m {
							for j := range ldc {
								got := part[i*ldc+j]
								if j >= nc {
									if got != 0x5a {
										t.Fatalf("%s %+v columns %d..%d: out[%d][%d] past the range changed to %d", im.name, sh, c0, c1, i, j, got)
									}
								} else if w := want[i*sh.n+c0+j]; got != w {
									t.Fatalf("%s %+v mode %d columns %d..%d: out[%d][%d] = %d, want %d", im.name, sh, mode, c0, c1, i, j, got, w)
								}
							}
						}
						if c1 == sh.n {
							break
						}
					}
				}
				if err := p.GemmRowsRequantCols(&rows, 1, sh.n-1, out, ldo); err == nil && sh.n > 1 {
					t.Errorf("%s: GemmRowsRequantCols accepted a range starting at column 1", im.name)
				}
			}
		}
	}
}

// TestOffsetPackedServesRequantOnly: a B packed for offset rows is refused
// by the signed entry points, and the fused one refuses a signed B.
func TestOffsetPackedServesRequantOnly(t *testing.T) {
	q, err := vec.NewRequant(make([]int32, 16), []int32{1 << 30, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 1 << 30}, make([]int, 16), 0, -128, 127)
	if err != nil {
		t.Fatal(err)
	}
	off, err := PackOffsetA(16, 8, make([]int8, 128), 8, q)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := Pack(16, 8, make([]int8, 128), 8)
	if err != nil {
		t.Fatal(err)
	}
	a := make([]int8, 8)
	rows := Rows{A: a, AOff: []int32{0}, SegLen: 8, Seg: 1}
	if err := off.Gemm(1, a, 8, make([]int32, 16), 16); err == nil {
		t.Error("Gemm accepted a B packed for offset rows")
	}
	if err := signed.GemmRowsRequant(&rows, make([]int8, 16), 16); err == nil {
		t.Error("GemmRowsRequant accepted a signed B")
	}
	if err := off.GemmRowsRequant(&rows, make([]int8, 15), 16); err == nil {
		t.Error("GemmRowsRequant accepted a short out")
	}
	if _, err := PackOffsetA(4, 6, make([]int8, 24), 6, q); err == nil && KAlign() > 2 {
		t.Error("PackOffsetA accepted k=6 with a kernel that works in groups of 4")
	}
	if _, err := PackOffsetA(15, 8, make([]int8, 120), 8, q); err == nil {
		t.Error("PackOffsetA accepted a requantization of 16 channels for 15 columns")
	}
	for _, lh := range [][2]int32{{-129, 127}, {-128, 128}} {
		wide := *q
		wide.Lo, wide.Hi = lh[0], lh[1]
		if _, err := PackOffsetA(16, 8, make([]int8, 128), 8, &wide); err == nil {
			t.Errorf("PackOffsetA accepted the clamp %v, outside int8", lh)
		}
	}
}

func TestOffsetCopy(t *testing.T) {
	// Every length through the AVX-512 copy's paths (steps of 256 and 64
	// bytes, the masked tail), at unaligned offsets, with canaries after
	// dst's part and around it.
	const canary = 0x5a
	for n := 0; n <= 600; n++ {
		for _, off := range []int{0, 1, 7} {
			src := make([]int8, off+n+3)
			for i := range src {
				src[i] = int8(i*29 - 128)
			}
			dst := make([]int8, off+n+64)
			for i := range dst {
				dst[i] = canary
			}
			OffsetCopy(dst[off:off+n], src[off:])
			for i := range n {
				x := src[off+i]
				if int(uint8(dst[off+i])) != int(x)+128 {
					t.Fatalf("n=%d off=%d: OffsetCopy[%d] of %d = byte %d, want %d", n, off, i, x, uint8(dst[off+i]), int(x)+128)
				}
			}
			for i, v := range dst {
				if (i < off || i >= off+n) && v != canary {
					t.Fatalf("n=%d off=%d: OffsetCopy wrote byte %d outside dst", n, off, i)
				}
			}
		}
	}
	// min(len(dst), len(src)) values.
	src := make([]int8, 37)
	dst := make([]int8, 40)
	OffsetCopy(dst, src)
	for _, v := range dst[37:] {
		if v != 0 {
			t.Fatal("OffsetCopy wrote past src's length")
		}
	}
}

// FuzzGemmRowsRequant: every implementation equals the plain sum and the
// requantization's definition on segment shapes, values and parameters
// taken from the input.
func FuzzGemmRowsRequant(f *testing.F) {
	f.Add([]byte{3, 7, 2, 1, 30, 0x80, 0x7f, 1, 2, 3})
	f.Add([]byte{6, 64, 4, 3, 2, 0x80, 0x80, 0x80, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 5 {
			return
		}
		m, n := int(data[0])%14+1, int(data[1])%140+1
		segLen, seg := 4*(int(data[2])%12+1), int(data[3])%4+1
		stride := segLen - 4 + int(data[4])%40 // overlapping segments too
		k := segLen * seg
		vals := data[5:]
		if len(vals) == 0 {
			vals = []byte{0}
		}
		v := func(i int) int8 { return int8(vals[i%len(vals)]) }
		b := make([]int8, n*k)
		for i := range b {
			b[i] = v(i*7 + 3)
		}
		bias, mult, shift := make([]int32, n), make([]int32, n), make([]int, n)
		for c := range n {
			bias[c] = int32(v(c))*int32(v(c+1))*97 + int32(v(c+2))
			mult[c] = 1<<30 | int32(uint8(v(c+3)))<<22 | int32(uint8(v(c+4)))
			shift[c] = int(uint8(v(c+5)))%20 - 16
		}
		q, err := vec.NewRequant(bias, mult, shift, int32(v(1)), -128, 127)
		if err != nil {
			t.Fatal(err)
		}
		span := (seg-1)*stride + segLen
		a := make([]int8, span+m*3)
		for i := range a {
			a[i] = v(i*5 + 1)
		}
		rows := Rows{A: a, SegLen: segLen, Seg: seg, SegStride: stride}
		want := make([]int8, m*n)
		acc := make([]int32, n)
		for i := range m {
			off := 3 * i
			rows.AOff = append(rows.AOff, int32(off))
			for j := range n {
				var s int32
				for sg := range seg {
					for t, x := range a[off+sg*stride : off+sg*stride+segLen] {
						s += int32(uint8(x)) * int32(b[j*k+sg*segLen+t])
					}
				}
				acc[j] = s
			}
			q.Row(acc, want[i*n:(i+1)*n])
		}
		for _, im := range impls {
			p, err := packWith(im, n, k, b, k, q)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]int8, m*n)
			if err := p.GemmRowsRequant(&rows, out, n); err != nil {
				t.Fatal(err)
			}
			for i := range out {
				if out[i] != want[i] {
					t.Fatalf("%s m=%d n=%d %d segments of %d (stride %d): out[%d] = %d, want %d", im.name, m, n, seg, segLen, stride, i, out[i], want[i])
				}
			}
		}
	})
}

// BenchmarkGemmRowsRequant: the fused kernel on ResNet18's convolutions,
// patches read in place from a padded NHWC input (GMAC/s counts the
// products the kernel does, the stem's zero-weight bytes included).
func BenchmarkGemmRowsRequant(b *testing.B) {
	r := rand.New(rand.NewSource(5))
	for _, sh := range []struct {
		name                        string
		oh, ow, stride, kh, kw, cin int
		seg, cout                   int
	}{
		{"stem7x7s2", 112, 112, 2, 7, 7, 3, 24, 64},
		{"layer1", 56, 56, 1, 3, 3, 64, 192, 64},
		{"layer2", 28, 28, 1, 3, 3, 128, 384, 128},
		{"layer3", 14, 14, 1, 3, 3, 256, 768, 256},
	} {
		hp := (sh.oh-1)*sh.stride + sh.kh
		wp := (sh.ow-1)*sh.stride + sh.kw
		a := make([]int8, hp*wp*sh.cin+sh.seg)
		fill(r, a, 0)
		k := sh.kh * sh.seg
		w := make([]int8, sh.cout*k)
		fill(r, w, 0)
		mult, shift := make([]int32, sh.cout), make([]int, sh.cout)
		for c := range mult {
			mult[c], shift[c] = 1<<30+int32(c), -9
		}
		q, err := vec.NewRequant(make([]int32, sh.cout), mult, shift, 3, -128, 127)
		if err != nil {
			b.Fatal(err)
		}
		p, err := PackOffsetA(sh.cout, k, w, k, q)
		if err != nil {
			b.Fatal(err)
		}
		m := sh.oh * sh.ow
		rows := Rows{A: a, SegLen: sh.seg, Seg: sh.kh, SegStride: wp * sh.cin}
		for y := range sh.oh {
			for x := range sh.ow {
				rows.AOff = append(rows.AOff, int32((y*sh.stride*wp+x*sh.stride)*sh.cin))
			}
		}
		out := make([]int8, m*sh.cout)
		const block = 48
		b.Run(fmt.Sprintf("%s/%s", p.Kernel(), sh.name), func(b *testing.B) {
			for range b.N {
				for r0 := 0; r0 < m; r0 += block {
					r1 := min(m, r0+block)
					part := rows
					part.AOff = rows.AOff[r0:r1]
					_ = p.GemmRowsRequant(&part, out[r0*sh.cout:r1*sh.cout], sh.cout)
				}
			}
			b.ReportMetric(float64(m)*float64(sh.cout)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
	}
}
