package vec

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// A benchmark per kernel, each implementation (generic is the plain loop)
// on the sizes its callers use, with MB/s over the bytes it reads and
// writes.

// benchEach runs f as a sub-benchmark per implementation and size.
func benchEach(b *testing.B, sizes []int, bytesPer int, f func(b *testing.B, n int)) {
	for _, n := range sizes {
		for _, im := range impls {
			b.Run(fmt.Sprintf("%s/n=%d", im.name, n), func(b *testing.B) {
				use(b, im)
				b.SetBytes(int64(n * bytesPer))
				f(b, n)
			})
		}
	}
}

// BenchmarkAxpyF64: a row of the anomaly map's blur (224 and 1024 wide).
func BenchmarkAxpyF64(b *testing.B) {
	benchEach(b, []int{224, 1024}, 24, func(b *testing.B, n int) {
		acc, x := make([]float64, n), make([]float64, n)
		for i := range x {
			x[i] = float64(i)
		}
		for range b.N {
			AxpyF64(acc, x, 0.001)
		}
	})
}

// BenchmarkAxpyBytesF32: a row of the resizer's vertical pass (224 and
// 1280 RGB pixels).
func BenchmarkAxpyBytesF32(b *testing.B) {
	benchEach(b, []int{224 * 3, 1280 * 3}, 9, func(b *testing.B, n int) {
		acc, x := make([]float32, n), make([]uint8, n)
		for i := range x {
			x[i] = uint8(i)
		}
		for range b.N {
			AxpyBytesF32(acc, x, 0.25)
		}
	})
}

// BenchmarkLerp2x2: one pixel of the anomaly map's upsampling (one
// channel: the call is the cost) and one upsampled pixel of the patch
// embedding (ResNet18's layer3 has 256 channels; MobileNetV2's taps fewer).
func BenchmarkLerp2x2(b *testing.B) {
	benchEach(b, []int{1, 96, 256}, 20, func(b *testing.B, n int) {
		o := make([]float32, n)
		rows := [4][]float32{make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)}
		w := [4]float32{0.25, 0.75, 0.5, 0.5}
		for range b.N {
			Lerp2x2(o, rows[0], rows[1], rows[2], rows[3], &w)
		}
	})
}

// BenchmarkQuantizeFloat: a float input image of 224x224x3, and a chunk.
func BenchmarkQuantizeFloat(b *testing.B) {
	benchEach(b, []int{8192, 224 * 224 * 3}, 5, func(b *testing.B, n int) {
		in, out := make([]float32, n), make([]int8, n)
		for i := range in {
			in[i] = float32(i%255) - 127.5
		}
		for range b.N {
			QuantizeFloat(in, out, 0.5, 3, -128, 127, 0)
		}
	})
}

// BenchmarkAddQuant: a residual ADD's chunk (4096 elements, the engine's
// split) and a whole MobileNetV2 56x56x24 tensor.
func BenchmarkAddQuant(b *testing.B) {
	q, err := NewAddQuant(-3, 17, 5, -128, 127, 1<<30+12345, -2, 1<<30+999, -1, 1<<30+7, 0)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	benchEach(b, []int{4096, 56 * 56 * 24}, 3, func(b *testing.B, n int) {
		x, y, out := bytes8(r, n), bytes8(r, n), make([]int8, n)
		for range b.N {
			q.Add(x, y, out)
		}
	})
}

// BenchmarkMulAccPixels: one depthwise tap over a row of 56 output pixels
// of 96 and 144 channels (MobileNetV2), stride 1.
func BenchmarkMulAccPixels(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []int{96, 144} {
		const npix = 56
		acc, x, w := make([]int32, npix*c), bytes8(r, npix*c), make([]int32, c)
		for _, im := range impls {
			b.Run(fmt.Sprintf("%s/c=%d", im.name, c), func(b *testing.B) {
				use(b, im)
				b.SetBytes(int64(npix * c * 9))
				for range b.N {
					MulAccPixels(acc, x, w, c, npix, c, 3)
				}
			})
		}
	}
}

// BenchmarkMaxInto: a max pool tap over one pixel's channels (64, ResNet18)
// and over a row of them.
func BenchmarkMaxInto(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	benchEach(b, []int{64, 112 * 64}, 3, func(b *testing.B, n int) {
		dst, src := bytes8(r, n), bytes8(r, n)
		for range b.N {
			MaxInto(dst, src)
		}
	})
}

// BenchmarkRequant: a block of 48 rows of a convolution's accumulators
// (the engine's block) for 64 and 256 output channels.
func BenchmarkRequant(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{64, 256} {
		q := randomRequant(b, r, n)
		const rows = 48
		acc, out := accs(r, rows*n), make([]int8, rows*n)
		for _, im := range impls {
			b.Run(fmt.Sprintf("%s/c=%d", im.name, n), func(b *testing.B) {
				use(b, im)
				b.SetBytes(int64(rows * n * 5))
				for range b.N {
					q.Rows(acc, out, rows)
				}
			})
		}
	}
}
