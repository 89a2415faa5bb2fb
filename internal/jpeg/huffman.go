package jpeg

// lookBits is the width of the Huffman fast-lookup table: codes of up to
// this many bits (nearly all of them in practice) take one table read.
const lookBits = 9

// huffTable is one Huffman table (T.81 Annex C) prepared for decoding.
type huffTable struct {
	// look[next lookBits bits] = length<<8 | symbol, 0 for a longer code.
	look [1 << lookBits]uint16
	// acFast[next lookBits bits], for an AC table: when those bits hold a
	// whole code and its coefficient's bits, value<<16 | run<<8 | bits
	// used (0 otherwise, and for EOB and ZRL): most coefficients of a
	// camera frame take one table read.
	acFast [1 << lookBits]int32
	// For codes longer than lookBits (F.2.2.3): the largest code of each
	// length (-1: none), the first code of each length and where its
	// symbols start in vals.
	maxcode [17]int32
	mincode [17]int32
	valptr  [17]int32
	vals    [256]uint8
}

// build prepares the table from a DHT segment's counts of codes per length
// (1..16) and its symbols. Codes are assigned in order (Annex C); a set of
// counts that needs more codes of a length than exist is an error.
func (h *huffTable) build(counts *[16]uint8, vals []uint8) error {
	clear(h.look[:])
	copy(h.vals[:], vals)
	code, k := int32(0), int32(0)
	for l := 1; l <= 16; l++ {
		n := int32(counts[l-1])
		h.mincode[l], h.valptr[l] = code, k
		if code+n > 1<<l {
			return errorf("Huffman table with more codes of %d bits than exist", l)
		}
		for i := int32(0); i < n; i++ {
			if l <= lookBits {
				shift := lookBits - l
				e := uint16(l)<<8 | uint16(vals[k])
				for j := code << shift; j < (code+1)<<shift; j++ {
					h.look[j] = e
				}
			}
			code++
			k++
		}
		h.maxcode[l] = code - 1
		if n == 0 {
			h.maxcode[l] = -1
		}
		code <<= 1
	}
	for i, e := range h.look {
		h.acFast[i] = 0
		l, rs := int(e>>8), uint8(e)
		run, size := int32(rs>>4), int(rs&15)
		if e == 0 || size == 0 || l+size > lookBits {
			continue
		}
		v := int32(i>>(lookBits-l-size)) & (1<<size - 1)
		if v < 1<<(size-1) { // F.2.2.1's EXTEND
			v += -1<<size + 1
		}
		h.acFast[i] = v<<16 | run<<8 | int32(l+size)
	}
	return nil
}

// bitReader reads the entropy-coded segment of a scan, MSB first, with the
// byte stuffing of B.1.1.5 removed. It never reads past a marker: there (or
// at the end of the data) it supplies zero bits and counts them in pad, and
// a decode that consumed them is an error (the scan was cut short).
type bitReader struct {
	data []byte
	pos  int
	acc  uint64 // the next bits, left-aligned
	n    uint   // valid bits in acc (pad of them zero padding)
	pad  uint
	// atMarker: pos is at the FF of a marker (or the end of data).
	atMarker bool
}

func (br *bitReader) reset(data []byte, pos int) {
	*br = bitReader{data: data, pos: pos}
}

// fill tops acc up to at least 57 bits.
func (br *bitReader) fill() {
	for br.n <= 56 {
		if !br.atMarker {
			if br.pos < len(br.data) {
				b := br.data[br.pos]
				if b != 0xFF {
					br.acc |= uint64(b) << (56 - br.n)
					br.n += 8
					br.pos++
					continue
				}
				if br.pos+1 < len(br.data) && br.data[br.pos+1] == 0x00 {
					br.acc |= 0xFF << (56 - br.n)
					br.n += 8
					br.pos += 2
					continue
				}
			}
			br.atMarker = true
		}
		br.n += 8
		br.pad += 8
	}
}

// overrun reports whether a decode consumed padding beyond the scan's data.
func (br *bitReader) overrun() bool { return br.n < br.pad }

// decode reads one Huffman-coded symbol.
func (br *bitReader) decode(h *huffTable) (uint8, error) {
	if br.n < 16 {
		br.fill()
	}
	if e := h.look[br.acc>>(64-lookBits)]; e != 0 {
		l := uint(e >> 8)
		br.acc <<= l
		br.n -= l
		return uint8(e), nil
	}
	for l := uint(lookBits + 1); l <= 16; l++ {
		code := int32(br.acc >> (64 - l))
		if code <= h.maxcode[l] {
			br.acc <<= l
			br.n -= l
			return h.vals[h.valptr[l]+code-h.mincode[l]], nil
		}
	}
	return 0, errorf("bad Huffman code")
}

// receiveExtend reads s (1..15) bits and extends them to a signed value
// (F.2.2.1, Figure F.12).
func (br *bitReader) receiveExtend(s uint8) int32 {
	if br.n < uint(s) {
		br.fill()
	}
	v := int32(br.acc >> (64 - uint(s)))
	br.acc <<= s
	br.n -= uint(s)
	if v < 1<<(s-1) {
		v += -1<<s + 1
	}
	return v
}
