//go:build noasm || !gc || !amd64

package vec

// Builds without the AVX-512 kernels (every architecture but amd64, and
// -tags noasm): the entries call these only when avx512 is in use, which
// archImpls then never offers.

const noAVX512 = "vec: no AVX-512 kernels in this build"

func axpyF64AVX512([]float64, []float64, float64) int          { panic(noAVX512) }
func axpyBytesF32AVX512([]float32, []uint8, float32) int       { panic(noAVX512) }
func lerp2x2AVX512(_, _, _, _, _ []float32, _ *[4]float32) int { panic(noAVX512) }
func quantizeAVX512([]float32, []int8, float32, int32, int32, int32, int32) int {
	panic(noAVX512)
}
func addLUTAVX512(_, _, _, _ []int8) int { panic(noAVX512) }
func mulAccPixelsAVX512([]int32, []int8, []int32, int, int, int, int32) int {
	panic(noAVX512)
}
func maxIntoAVX512(_, _ []int8) int                        { panic(noAVX512) }
func requantRowsAVX512(*Requant, []int32, []int8, int) int { panic(noAVX512) }
