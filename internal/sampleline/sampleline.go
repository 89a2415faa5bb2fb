// Package sampleline draws a small synthetic inspection line for the demo
// and tests: top views of a machined washer on a textured belt, good parts
// with natural variation (position, rotation of the texture, lighting,
// noise), and defective parts with scratches, holes and stains, each with
// its pixel mask, in MVTec AD's folder layout. Two more kinds test the
// input geometry: long strips (500×1250) with thin cracks and scratches
// 2–4 pixels wide, and small parts in 640×480 frames with small chips and
// spots.
package sampleline

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// Size is the side of the generated images.
const Size = 256

// Counts says how many images of each kind to make.
type Counts struct {
	Train, TestGood, PerDefect int
}

// Defects are the defect types drawn.
var Defects = []string{"scratch", "hole", "stain"}

// Write creates dir/train/good, dir/test/{good,scratch,hole,stain} and
// dir/ground_truth/<type>/NNN_mask.png, seeded: the washer line.
func Write(dir string, n Counts, seed uint64) error { return WriteKind(dir, KindWasher, n, seed) }

// WriteKind is Write for a kind of line (KindWasher, KindStrip, KindSmall):
// the same layout, with the kind's defect types (DefectsOf).
func WriteKind(dir, kind string, n Counts, seed uint64) error {
	defects, err := DefectsOf(kind)
	if err != nil {
		return err
	}
	draw, w, h := part, Size, Size
	switch kind {
	case KindStrip:
		draw, w, h = strip, StripW, StripH
	case KindSmall:
		draw, w, h = small, SmallW, SmallH
	}
	rng := rand.New(rand.NewPCG(seed, 0x6c696e65))
	write := func(sub string, i int, img image.Image) error {
		p := filepath.Join(dir, sub, fmt.Sprintf("%03d.png", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		if err := png.Encode(f, img); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	for i := 0; i < n.Train; i++ {
		if err := write("train/good", i, draw(rng, "", nil)); err != nil {
			return err
		}
	}
	for i := 0; i < n.TestGood; i++ {
		if err := write("test/good", i, draw(rng, "", nil)); err != nil {
			return err
		}
	}
	for _, d := range defects {
		for i := 0; i < n.PerDefect; i++ {
			mask := image.NewGray(image.Rect(0, 0, w, h))
			if err := write("test/"+d, i, draw(rng, d, mask)); err != nil {
				return err
			}
			f := filepath.Join("ground_truth", d)
			if err := write(f, i, mask); err != nil {
				return err
			}
			// MVTec names masks NNN_mask.png.
			if err := os.Rename(filepath.Join(dir, f, fmt.Sprintf("%03d.png", i)), filepath.Join(dir, f, fmt.Sprintf("%03d_mask.png", i))); err != nil {
				return err
			}
		}
	}
	return nil
}

// part draws one washer; a defect (with its mask) when defect != "".
func part(rng *rand.Rand, defect string, mask *image.Gray) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, Size, Size))
	cx := Size/2 + rng.Float64()*8 - 4
	cy := Size/2 + rng.Float64()*8 - 4
	light := 0.9 + rng.Float64()*0.2
	phase := rng.Float64() * 2 * math.Pi
	const rOut, rIn = 96.0, 40.0
	for y := 0; y < Size; y++ {
		for x := 0; x < Size; x++ {
			// Belt: dark with a fine woven texture.
			v := 50 + 12*math.Sin(float64(x)*0.9)*math.Sin(float64(y)*0.9)
			dx, dy := float64(x)-cx, float64(y)-cy
			r := math.Hypot(dx, dy)
			if r < rOut && r > rIn {
				// Machined face: bright, with concentric turning marks.
				a := math.Atan2(dy, dx)
				v = 170 + 14*math.Sin(r*1.7+phase) + 6*math.Sin(a*9)
				if r > rOut-4 || r < rIn+4 {
					v -= 40 // chamfers
				}
			}
			v = v*light + rng.NormFloat64()*3
			c := uint8(math.Max(0, math.Min(255, v)))
			img.SetRGBA(x, y, color.RGBA{c, c, uint8(math.Max(0, math.Min(255, v*0.97))), 255})
		}
	}
	if defect == "" {
		return img
	}
	// The defect sits on the machined face.
	ang := rng.Float64() * 2 * math.Pi
	rad := rIn + 15 + rng.Float64()*(rOut-rIn-30)
	px, py := cx+rad*math.Cos(ang), cy+rad*math.Sin(ang)
	paint := func(x, y int, c color.RGBA) {
		if x < 0 || y < 0 || x >= Size || y >= Size {
			return
		}
		img.SetRGBA(x, y, c)
		mask.SetGray(x, y, color.Gray{255})
	}
	switch defect {
	case "scratch":
		// A thin dark line across the turning marks.
		da := rng.Float64() * math.Pi
		l := 25 + rng.Float64()*20
		for t := -l; t <= l; t += 0.5 {
			x, y := px+t*math.Cos(da), py+t*math.Sin(da)
			for w := -1; w <= 1; w++ {
				paint(int(x+float64(w)*math.Sin(da)), int(y-float64(w)*math.Cos(da)), color.RGBA{60, 60, 62, 255})
			}
		}
	case "hole":
		// A round pit: dark centre, bright rim.
		rr := 5 + rng.Float64()*5
		for y := int(py - rr - 2); y <= int(py+rr+2); y++ {
			for x := int(px - rr - 2); x <= int(px+rr+2); x++ {
				d := math.Hypot(float64(x)-px, float64(y)-py)
				switch {
				case d < rr:
					paint(x, y, color.RGBA{20, 20, 22, 255})
				case d < rr+2:
					paint(x, y, color.RGBA{235, 235, 235, 255})
				}
			}
		}
	case "stain":
		// A brownish, soft-edged blob.
		rr := 10 + rng.Float64()*8
		for y := int(py - rr); y <= int(py+rr); y++ {
			for x := int(px - rr); x <= int(px+rr); x++ {
				d := math.Hypot(float64(x)-px, float64(y)-py)
				if d < rr*(0.8+0.2*math.Sin(math.Atan2(float64(y)-py, float64(x)-px)*3)) {
					if x < 0 || y < 0 || x >= Size || y >= Size {
						continue
					}
					o := img.RGBAAt(x, y)
					paint(x, y, color.RGBA{uint8(float64(o.R) * 0.75), uint8(float64(o.G) * 0.55), uint8(float64(o.B) * 0.35), 255})
				}
			}
		}
	}
	return img
}
