package vec

import "os"

// Kernel names, as Kernels reports them and LINESIGHT_VEC accepts them.
const (
	KernelGeneric = "generic" // the Go twins, on every architecture
	KernelAVX512  = "avx512"  // amd64 with AVX-512F and AVX-512BW
)

// impl is one implementation of every kernel of the package. The kernels
// behind the exported functions trust their inputs: the exported entry has
// checked lengths and sliced every operand to the length the kernel works
// on, as each field's comment says. Every implementation gives the same
// bits as generic on every input.
type impl struct {
	name string

	// len(x) == len(acc).
	axpyF64 func(acc, x []float64, k float64)
	// len(x) == len(acc).
	axpyBytesF32 func(acc []float32, x []uint8, k float32)
	// a0, a1, b0, b1 as long as o.
	lerp2x2 func(o, a0, a1, b0, b1 []float32, w *[4]float32)
	// len(in) == len(out).
	quantize func(in []float32, out []int8, scale float32, zp, qmin, qmax, shift int32)
	// len(a) == len(b) == len(out); lut holds 1<<16 + 3 entries.
	addLUT func(a, b, out, lut []int8)
	// npix, c > 0; len(acc) == npix·c; len(x) == (npix−1)·xstride + c;
	// len(w) == c.
	mulAccPixels func(acc []int32, x []int8, w []int32, c, npix, xstride int, zx int32)
	// len(src) == len(dst).
	maxInto func(dst, src []int8)
	// rows > 0, n = len(q.Mult) > 0; len(acc) == len(out) == rows·n.
	requantRows func(q *Requant, acc []int32, out []int8, rows int)
}

var generic = &impl{
	name:         KernelGeneric,
	axpyF64:      axpyF64Generic,
	axpyBytesF32: axpyBytesF32Generic,
	lerp2x2:      lerp2x2Generic,
	quantize:     quantizeGeneric,
	addLUT:       addLUTGeneric,
	mulAccPixels: mulAccPixelsGeneric,
	maxInto:      maxIntoGeneric,
	requantRows:  requantRowsGeneric,
}

// impls lists the implementations this machine runs, best first, with
// generic always last; active is the one the exported functions call.
var (
	impls  []*impl
	active *impl
)

func init() {
	impls = append(archImpls(), generic)
	active = pick(impls, os.Getenv("LINESIGHT_VEC"))
}

// pick is the implementation named want (LINESIGHT_VEC=generic, say, for
// benchmarks and for ruling a kernel out in the field), or the best of
// list when want is empty or names none of them.
func pick(list []*impl, want string) *impl {
	for _, im := range list {
		if im.name == want {
			return im
		}
	}
	return list[0]
}

// Kernels returns the names of the implementations this machine runs, best
// first, and the one in use.
func Kernels() (available []string, used string) {
	for _, im := range impls {
		available = append(available, im.name)
	}
	return available, active.name
}

// Kernel names the implementation in use.
func Kernel() string { return active.name }
