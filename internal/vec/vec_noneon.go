//go:build noasm || !gc || !arm64

package vec

// Builds without the NEON kernels (every architecture but arm64, and -tags
// noasm): the entries call these only when neon is in use, which
// archImpls then never offers.

const noNEON = "vec: no NEON kernels in this build"

func axpyF64NEON([]float64, []float64, float64) int          { panic(noNEON) }
func axpyBytesF32NEON([]float32, []uint8, float32) int       { panic(noNEON) }
func lerp2x2NEON(_, _, _, _, _ []float32, _ *[4]float32) int { panic(noNEON) }
func quantizeNEON([]float32, []int8, float32, int32, int32, int32, int32) int {
	panic(noNEON)
}
func mulAccPixelsNEON([]int32, []int8, []int32, int, int, int, int32) int {
	panic(noNEON)
}
func addNEON(*[14]int32, []int8, []int8, []int8) int     { panic(noNEON) }
func maxIntoNEON(_, _ []int8) int                        { panic(noNEON) }
func requantRowsNEON(*Requant, []int32, []int8, int) int { panic(noNEON) }
