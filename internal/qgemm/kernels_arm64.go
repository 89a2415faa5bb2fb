//go:build !noasm

package qgemm

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:noescape
func sdotKernel(a *[8]*int8, b *byte, kg int, c *[8]*int32)

//go:noescape
func neonKernel(a *[4]*int8, b *byte, kc int, c *[4]*int32)

var (
	sdot = &impl{name: KernelSDOT, kAlign: 4, pack: packSDOT, gemm: gemmSDOT, neonSearch: true}
	neon = &impl{name: KernelNEON, kAlign: 8, pack: packNEON, gemm: gemmNEON, neonSearch: true}
)

// archImpls: SDOT where the CPU has the dotprod extension (Cortex-A76 and
// later: Pi 5, Jetson Orin), NEON everywhere else (Cortex-A72: Pi 4;
// Cortex-A57: Jetson Nano). ASIMD is mandatory on arm64.
func archImpls() []*impl {
	if cpu.ARM64.HasASIMDDP {
		return []*impl{sdot, neon}
	}
	return []*impl{neon}
}

// SDOT layout: blocks of 8 columns, each as kg groups of 8 columns x 4
// bytes along k (two vectors). SDOT multiplies signed by signed bytes, so
// B is stored as it is.
const (
	sdotRows  = 8
	sdotBlock = 8
)

func packSDOT(p *Packed) {
	kg := p.K / 4
	nblk := (p.N + sdotBlock - 1) / sdotBlock
	p.u8 = make([]byte, nblk*kg*sdotBlock*4)
	for j := 0; j < p.N; j++ {
		blk, col := j/sdotBlock, j%sdotBlock
		for g := range kg {
			o := (blk*kg+g)*sdotBlock*4 + col*4
			for t := range 4 {
				p.u8[o+t] = byte(p.b[j*p.K+4*g+t])
			}
		}
	}
}

func gemmSDOT(p *Packed, m int, a []int8, lda, col0, ncol int, c []int32, ldc int) {
	kg := p.K / 4
	var (
		ap      [sdotRows]*int8
		cp      [sdotRows]*int32
		scratch [sdotRows][sdotBlock]int32
	)
	if kg == 0 {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+ncol])
		}
	} else {
		for i0 := 0; i0 < m; i0 += sdotRows {
			rows := min(sdotRows, m-i0)
			for r := range sdotRows {
				if r < rows {
					ap[r] = &a[(i0+r)*lda]
				} else {
					ap[r] = ap[0]
				}
			}
			for j0 := col0; j0 < col0+ncol; j0 += sdotBlock {
				cols := min(sdotBlock, col0+ncol-j0)
				for r := range sdotRows {
					if r < rows && cols == sdotBlock {
						cp[r] = &c[(i0+r)*ldc+(j0-col0)]
					} else {
						cp[r] = &scratch[r][0]
					}
				}
				sdotKernel(&ap, &p.u8[(j0/sdotBlock)*kg*sdotBlock*4], kg, &cp)
				if cols != sdotBlock {
					for r := range rows {
						copy(c[(i0+r)*ldc+(j0-col0):(i0+r)*ldc+(j0-col0)+cols], scratch[r][:cols])
					}
				}
			}
		}
	}
	p.addTail(4*kg, m, a, lda, col0, ncol, c, ldc)
}

// NEON layout: blocks of 4 columns, each as kc chunks of 4 columns x 8
// bytes along k.
const (
	neonRows  = 4
	neonBlock = 4
)

func packNEON(p *Packed) {
	kc := p.K / 8
	nblk := (p.N + neonBlock - 1) / neonBlock
	p.u8 = make([]byte, nblk*kc*neonBlock*8)
	for j := 0; j < p.N; j++ {
		blk, col := j/neonBlock, j%neonBlock
		for ch := range kc {
			o := (blk*kc+ch)*neonBlock*8 + col*8
			for t := range 8 {
				p.u8[o+t] = byte(p.b[j*p.K+8*ch+t])
			}
		}
	}
}

func gemmNEON(p *Packed, m int, a []int8, lda, col0, ncol int, c []int32, ldc int) {
	kc := p.K / 8
	var (
		ap      [neonRows]*int8
		cp      [neonRows]*int32
		scratch [neonRows][neonBlock]int32
	)
	if kc == 0 {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+ncol])
		}
	} else {
		for i0 := 0; i0 < m; i0 += neonRows {
			rows := min(neonRows, m-i0)
			for r := range neonRows {
				if r < rows {
					ap[r] = &a[(i0+r)*lda]
				} else {
					ap[r] = ap[0]
				}
			}
			for j0 := col0; j0 < col0+ncol; j0 += neonBlock {
				cols := min(neonBlock, col0+ncol-j0)
				for r := range neonRows {
					if r < rows && cols == neonBlock {
						cp[r] = &c[(i0+r)*ldc+(j0-col0)]
					} else {
						cp[r] = &scratch[r][0]
					}
				}
				neonKernel(&ap, &p.u8[(j0/neonBlock)*kc*neonBlock*8], kc, &cp)
				if cols != neonBlock {
					for r := range rows {
						copy(c[(i0+r)*ldc+(j0-col0):(i0+r)*ldc+(j0-col0)+cols], scratch[r][:cols])
					}
				}
			}
		}
	}
	p.addTail(8*kc, m, a, lda, col0, ncol, c, ldc)
}

// The search's reductions (search.go) on arm64.

// dotSDOT: the dot product of n int8 values, n a positive multiple of 32
// (SDOT, dotprod).
//
//go:noescape
func dotSDOT(a, b *int8, n int) int32

// dotNEON: the same without dotprod, n a positive multiple of 16 (SMULL,
// SADALP).
//
//go:noescape
func dotNEON(a, b *int8, n int) int32

// argminLanesNEON: for n a positive multiple of 16, per lane l the smallest
// bn[j]−2·dot[j] over j ≡ l (mod 16) and the first j reaching it, into
// st as LaneMins holds them.
//
//go:noescape
func argminLanesNEON(dot, bn *int32, n int, st *LaneMins)

// dotARM64 is the dot product of the longest prefix of a and b in whole
// steps of the chosen kernel's instruction (SDOT: 32 bytes, NEON: 16),
// and that prefix's length; Dot adds the rest. It assumes len(a) >= 16 and
// len(b) == len(a). LINESIGHT_KERNEL=neon on a dotprod CPU rules SDOT out
// here too.
func dotARM64(a, b []int8) (int32, int) {
	if chosen == sdot {
		if n := len(a) &^ 31; n > 0 {
			return dotSDOT(unsafe.SliceData(a), unsafe.SliceData(b), n), n
		}
		return 0, 0
	}
	n := len(a) &^ 15
	return dotNEON(unsafe.SliceData(a), unsafe.SliceData(b), n), n
}

// argminARM64 is argminRef with the whole steps of 16 in NEON: 16 lanes of
// running minima, reduced with the lowest index on ties (LaneMins.Best),
// then the tail. It assumes len(dot) >= 16 and len(bn) == len(dot).
func argminARM64(dot, bn []int32) (int32, int) {
	n := len(dot)
	n16 := n &^ 15
	var st LaneMins
	argminLanesNEON(&dot[0], &bn[0], n16, &st)
	best, b := st.Best()
	bi := int(b)
	for j := n16; j < n; j++ {
		if d := bn[j] - 2*dot[j]; d < best {
			best, bi = d, j
		}
	}
	return best, bi
}
