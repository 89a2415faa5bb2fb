package qgemm

import (
	"runtime"
	"strings"

	"golang.org/x/sys/cpu"
)

// CPUFeatures describes, in one line, the CPU features the kernels of
// this package and of internal/vec dispatch on, each marked + (present,
// with the OS's support) or - (absent), after the architecture:
// "amd64 +avx2 +avx512f +avx512bw +avx512vnni", "arm64 +asimd -asimddp".
// With Kernels and vec.Kernels it is what the daemon logs at start: what
// the machine offers and what was chosen from it.
func CPUFeatures() string {
	var f []feature
	switch runtime.GOARCH {
	case "amd64", "386":
		f = []feature{
			{"avx2", cpu.X86.HasAVX2},
			{"avx512f", cpu.X86.HasAVX512F},
			{"avx512bw", cpu.X86.HasAVX512BW},
			{"avx512vnni", cpu.X86.HasAVX512VNNI},
		}
	case "arm64":
		f = []feature{{"asimd", cpu.ARM64.HasASIMD}, {"asimddp", cpu.ARM64.HasASIMDDP}}
	case "arm":
		f = []feature{{"neon", cpu.ARM.HasNEON}}
	}
	var b strings.Builder
	b.WriteString(runtime.GOARCH)
	for _, x := range f {
		b.WriteString(" ")
		if x.has {
			b.WriteString("+")
		} else {
			b.WriteString("-")
		}
		b.WriteString(x.name)
	}
	return b.String()
}

type feature struct {
	name string
	has  bool
}
