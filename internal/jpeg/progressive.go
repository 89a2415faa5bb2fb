package jpeg

// Progressive JPEG (T.81 Annex G, Huffman): the coefficients arrive in
// scans, each a band of zig-zag positions Ss..Se (spectral selection) at
// some bits of precision (successive approximation, Ah/Al), and are kept
// per block (component.coefs) until the last scan; finish then
// dequantizes and transforms every block as the sequential path does.

// checkScan checks a scan header's band and approximation bits against the
// frame's process (B.2.3, G.1.1.1.1), and that the Huffman tables it will
// use are defined.
func (d *Decoder) checkScan() error {
	if !d.progressive {
		if d.ss != 0 || d.se != 63 || d.ah != 0 || d.al != 0 {
			return errorf("sequential scan with Ss=%d Se=%d Ah=%d Al=%d", d.ss, d.se, d.ah, d.al)
		}
		for _, c := range d.scanComps[:d.nscanComps] {
			if !d.dcSet[c.td] || !d.acSet[c.ta] {
				return errorf("component %d uses Huffman tables %d/%d, not defined", c.id, c.td, c.ta)
			}
		}
		return nil
	}
	switch {
	case d.ss == 0 && d.se != 0:
		return errorf("progressive DC scan with Se=%d", d.se)
	case d.ss > 0 && (d.se < d.ss || d.se > 63):
		return errorf("progressive AC scan of band %d..%d", d.ss, d.se)
	case d.ss > 0 && d.nscanComps != 1:
		return errorf("progressive AC scan of %d components", d.nscanComps)
	case d.al > 13 || (d.ah != 0 && d.ah != d.al+1):
		return errorf("progressive scan with Ah=%d Al=%d", d.ah, d.al)
	}
	for _, c := range d.scanComps[:d.nscanComps] {
		if d.ss == 0 && d.ah == 0 && !d.dcSet[c.td] {
			return errorf("component %d uses DC Huffman table %d, not defined", c.id, c.td)
		}
		if d.ss > 0 && !d.acSet[c.ta] {
			return errorf("component %d uses AC Huffman table %d, not defined", c.id, c.ta)
		}
	}
	return nil
}

// bits reads n (0..16) bits as they are.
func (br *bitReader) bits(n uint) int32 {
	if n == 0 {
		return 0
	}
	if br.n < n {
		br.fill()
	}
	v := int32(br.acc >> (64 - n))
	br.acc <<= n
	br.n -= n
	return v
}

// progressiveBlock decodes this scan's part of block (bx, by) of c.
func (d *Decoder) progressiveBlock(c *component, bx, by int) error {
	stride := d.mcux * c.h
	blk := c.coefs[(by*stride+bx)*64 : (by*stride+bx)*64+64 : (by*stride+bx)*64+64]
	br := &d.br
	if d.ss == 0 {
		if d.ah == 0 { // DC, first scan (G.1.2.1): the difference, scaled by 2^Al
			s, err := br.decode(&d.dc[c.td])
			if err != nil {
				return err
			}
			if s > 11 {
				return errorf("DC difference of %d bits", s)
			}
			if s > 0 {
				c.pred += br.receiveExtend(s)
			}
			blk[0] = int16(c.pred << d.al)
		} else if br.bits(1) != 0 { // DC refinement: one more bit
			blk[0] |= 1 << d.al
		}
		return nil
	}
	if d.ah == 0 {
		return d.acFirst(c, blk)
	}
	return d.acRefine(c, blk)
}

// acFirst decodes a band's first scan (G.1.2.2): coefficients scaled by
// 2^Al, and end-of-band runs spanning blocks.
func (d *Decoder) acFirst(c *component, blk []int16) error {
	if d.eobrun > 0 {
		d.eobrun--
		return nil
	}
	br := &d.br
	ac := &d.ac[c.ta]
	for k := d.ss; k <= d.se; k++ {
		rs, err := br.decode(ac)
		if err != nil {
			return err
		}
		r, s := int(rs>>4), rs&15
		if s == 0 {
			if r < 15 { // EOBr: this block and 2^r-1+bits more end here
				d.eobrun = 1<<r - 1
				if r > 0 {
					d.eobrun += int(br.bits(uint(r)))
				}
				return nil
			}
			k += 15 // ZRL
			continue
		}
		if k += r; k > d.se {
			return errorf("AC coefficients past the end of the band")
		}
		blk[k] = int16(br.receiveExtend(s) << d.al)
	}
	return nil
}

// acRefine adds bit Al to a band's coefficients (G.1.2.3): a correction
// bit for each that is already nonzero, and new coefficients of magnitude
// 2^Al placed among the zero ones.
func (d *Decoder) acRefine(c *component, blk []int16) error {
	br := &d.br
	p1, m1 := int16(1)<<d.al, int16(-1)<<d.al
	refine := func(v *int16) {
		if br.bits(1) != 0 && *v&p1 == 0 {
			if *v >= 0 {
				*v += p1
			} else {
				*v += m1
			}
		}
	}
	k := d.ss
	if d.eobrun == 0 {
		ac := &d.ac[c.ta]
		for ; k <= d.se; k++ {
			rs, err := br.decode(ac)
			if err != nil {
				return err
			}
			r, s := int(rs>>4), rs&15
			var v int16
			if s != 0 {
				if s != 1 {
					return errorf("AC refinement of %d bits", s)
				}
				v = m1
				if br.bits(1) != 0 {
					v = p1
				}
			} else if r != 15 { // EOBr
				d.eobrun = 1 << r
				if r > 0 {
					d.eobrun += int(br.bits(uint(r)))
				}
				break
			}
			// Skip r zero coefficients, refining the nonzero ones on the
			// way; the new one (if any) goes in the zero after them.
			for ; k <= d.se; k++ {
				if blk[k] != 0 {
					refine(&blk[k])
				} else {
					if r == 0 {
						break
					}
					r--
				}
			}
			if v != 0 && k <= d.se {
				blk[k] = v
			}
		}
	}
	if d.eobrun > 0 {
		// In an end-of-band run: only the nonzero coefficients get a bit.
		for ; k <= d.se; k++ {
			if blk[k] != 0 {
				refine(&blk[k])
			}
		}
		d.eobrun--
	}
	return nil
}

// finish transforms a progressive image's coefficients into the planes.
func (d *Decoder) finish() {
	if !d.progressive {
		return
	}
	blk := &d.blk
	for i := 0; i < d.ncomp; i++ {
		c := &d.comps[i]
		q := &d.qt[c.tq]
		bw, bh := d.mcux*c.h, d.mcuy*c.v
		for by := 0; by < bh; by++ {
			for bx := 0; bx < bw; bx++ {
				coefs := c.coefs[(by*bw+bx)*64 : (by*bw+bx)*64+64]
				last := 0
				for k, v := range coefs {
					if v != 0 {
						blk[zigzag[k]] = int32(v) * q[k]
						last = k
					}
				}
				blk[0] = int32(coefs[0]) * q[0]
				d.transform(c, bx, by, last)
			}
		}
	}
}
