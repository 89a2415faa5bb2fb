package vec

import "os"

// Kernel names, as Kernels reports them and LINESIGHT_VEC accepts them.
const (
	KernelGeneric = "generic" // the Go twins, on every architecture
	KernelAVX512  = "avx512"  // amd64 with AVX-512F and AVX-512BW
	KernelNEON    = "neon"    // arm64 (Advanced SIMD)
)

// impl names one implementation of every kernel of the package. The
// exported entries branch on the one in use and call its functions
// directly (xxxGeneric, xxxAVX512, xxxNEON): a call through a function value would
// make every argument escape, and a caller's stack array (the weights of
// Lerp2x2, say) would be allocated on every call. The functions behind
// the entries trust their inputs: the entry has checked lengths and
// sliced every operand to the length the kernel works on. Every
// implementation gives the same bits as generic on every input.
type impl struct{ name string }

var (
	generic = &impl{name: KernelGeneric}
	// avx512 is offered by archImpls where the assembly exists and the
	// CPU runs it; elsewhere its functions are stubs never reached.
	avx512 = &impl{name: KernelAVX512}
	// neon likewise, on arm64.
	neon = &impl{name: KernelNEON}
)

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
