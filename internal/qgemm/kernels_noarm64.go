//go:build noasm || !arm64

package qgemm

// Builds without the arm64 kernels (every architecture but arm64, and
// -tags noasm): Dot and ArgminBiased call these only when the chosen
// kernel has neonSearch, which no implementation here has.

func dotARM64(a, b []int8) (int32, int) { panic("qgemm: no arm64 kernels in this build") }

func argminARM64(dot, bn []int32) (int32, int) {
	panic("qgemm: no arm64 kernels in this build")
}
