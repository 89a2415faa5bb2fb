package sampleline

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
)

// Kinds of line Write draws: the washer (square frames, Size×Size), long
// strips (StripW×StripH, thin transverse cracks and longitudinal scratches
// 2–4 pixels wide) and small parts (SmallW×SmallH frames, a small part with
// small chips and spots). Strips and small parts are what the published
// 224×224 squash handles badly: a squash shrinks a strip's long axis 2.5×
// more than its short one, and a small part's defects are a few pixels.
const (
	KindWasher = "washer"
	KindStrip  = "strip"
	KindSmall  = "small"
)

// Frame sizes of the strip and small-part lines.
const (
	StripW, StripH = 500, 1250
	SmallW, SmallH = 640, 480
)

// DefectsOf lists the defect types of a kind.
func DefectsOf(kind string) ([]string, error) {
	switch kind {
	case KindWasher, "":
		return Defects, nil
	case KindStrip:
		return []string{"crack", "scratch"}, nil
	case KindSmall:
		return []string{"chip", "spot"}, nil
	}
	return nil, fmt.Errorf("sampleline: kind %q: want %s, %s or %s", kind, KindWasher, KindStrip, KindSmall)
}

func clamp8(v float64) uint8 { return uint8(math.Max(0, math.Min(255, v))) }

// strip draws one rolled metal strip on a dark belt: brushing lines along
// the strip, a soft lengthwise shading, position and lighting variation.
func strip(rng *rand.Rand, defect string, mask *image.Gray) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, StripW, StripH))
	x0 := 40 + rng.Float64()*8 - 4
	x1 := StripW - 40 + rng.Float64()*8 - 4
	light := 0.92 + rng.Float64()*0.16
	phase := rng.Float64() * 2 * math.Pi
	shade := rng.Float64() * 2 * math.Pi
	// Natural variation: a few soft blotches (oil, annealing colour) and
	// longitudinal streaks differ from strip to strip.
	type blotch struct{ x, y, r, a float64 }
	var bl []blotch
	for range 4 {
		bl = append(bl, blotch{x0 + rng.Float64()*(x1-x0), rng.Float64() * StripH, 30 + rng.Float64()*60, rng.Float64()*16 - 8})
	}
	streak := make([]float64, StripW)
	for range 6 {
		sx, a := rng.IntN(StripW), rng.Float64()*10-5
		for d := -1; d <= 1; d++ {
			if sx+d >= 0 && sx+d < StripW {
				streak[sx+d] += a
			}
		}
	}
	// Chatter marks from the rolls: faint straight lines across the whole
	// strip, 2-3 pixels wide, on good strips too. A crack is told from
	// them by its shape (short, jagged, ending inside the strip), which
	// only survives if the image keeps its vertical resolution.
	chatter := make([]float64, StripH)
	for range 6 + rng.IntN(7) {
		cy, w, a := rng.IntN(StripH-4), 2+rng.IntN(2), 0.9+rng.Float64()*0.05
		for d := range w {
			chatter[cy+d] = a
		}
	}
	for y := 0; y < StripH; y++ {
		for x := 0; x < StripW; x++ {
			fx, fy := float64(x), float64(y)
			v := 45 + 10*math.Sin(fx*0.8)*math.Sin(fy*0.8) // belt weave
			if fx > x0 && fx < x1 {
				v = 150 + 7*math.Sin(fx*1.3+phase) + 4*math.Sin(fx*0.31+2*phase) + 10*math.Sin(fy/400+shade) + streak[x]
				for _, b := range bl {
					if d := math.Hypot(fx-b.x, fy-b.y); d < 2*b.r {
						v += b.a * math.Exp(-d*d/(b.r*b.r))
					}
				}
				if fx < x0+6 || fx > x1-6 {
					v -= 35 // rolled edges
				}
			}
			if chatter[y] > 0 && fx > x0+6 && fx < x1-6 {
				v *= chatter[y]
			}
			v = v*light + rng.NormFloat64()*3
			img.SetRGBA(x, y, color.RGBA{clamp8(v), clamp8(v * 0.99), clamp8(v * 1.02), 255})
		}
	}
	if defect == "" {
		return img
	}
	paint := func(x, y int, v float64) {
		if x <= int(x0)+8 || x >= int(x1)-8 || y < 0 || y >= StripH {
			return
		}
		o := img.RGBAAt(x, y)
		img.SetRGBA(x, y, color.RGBA{clamp8(float64(o.R) * v), clamp8(float64(o.G) * v), clamp8(float64(o.B) * v), 255})
		mask.SetGray(x, y, color.Gray{255})
	}
	width := 2 + rng.IntN(3) // 2..4 pixels
	cy := 100 + rng.Float64()*(StripH-200)
	cx := x0 + 60 + rng.Float64()*(x1-x0-120)
	var ang, length, dark float64
	switch defect {
	case "crack":
		// Across the strip (within 10° of transverse, like the chatter
		// marks), jagged, as dark as the darkest chatter mark.
		ang = (rng.Float64()*20 - 10) * math.Pi / 180
		length = 30 + rng.Float64()*50
		dark = 0.9
	case "scratch":
		// Along the strip, straight, lighter.
		ang = math.Pi/2 + (rng.Float64()*10-5)*math.Pi/180
		length = 120 + rng.Float64()*200
		dark = 0.9
	}
	jag := 0.0
	for t := -length / 2; t <= length/2; t += 0.5 {
		if defect == "crack" {
			jag += rng.NormFloat64() * 0.25
			jag = math.Max(-4, math.Min(4, jag))
		}
		x := cx + t*math.Cos(ang) - jag*math.Sin(ang)
		y := cy + t*math.Sin(ang) + jag*math.Cos(ang)
		for w := 0; w < width; w++ {
			off := float64(w) - float64(width-1)/2
			paint(int(math.Round(x-off*math.Sin(ang))), int(math.Round(y+off*math.Cos(ang))), dark)
		}
	}
	return img
}

// small draws one small turned part (a hexagon head on a round flange,
// about 130 pixels across) at a random place of a textured tray.
func small(rng *rand.Rand, defect string, mask *image.Gray) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, SmallW, SmallH))
	cx := SmallW/2 + rng.Float64()*40 - 20
	cy := SmallH/2 + rng.Float64()*30 - 15
	rot := rng.Float64() * math.Pi / 3
	light := 0.92 + rng.Float64()*0.16
	const rFlange, rHex = 64.0, 40.0
	hex := func(dx, dy float64) bool {
		a := math.Atan2(dy, dx) - rot
		a = math.Mod(a+10*math.Pi, math.Pi/3) - math.Pi/6
		return math.Hypot(dx, dy)*math.Cos(a) < rHex
	}
	for y := 0; y < SmallH; y++ {
		for x := 0; x < SmallW; x++ {
			fx, fy := float64(x), float64(y)
			v := 70 + 8*math.Sin(fx*0.5+fy*0.3) + 6*math.Sin(fx*0.21-fy*0.43) // tray texture
			dx, dy := fx-cx, fy-cy
			r := math.Hypot(dx, dy)
			switch {
			case hex(dx, dy):
				v = 190 + 8*math.Sin(r*2.1)
			case r < rFlange:
				v = 155 + 10*math.Sin(r*1.4)
				if r > rFlange-3 {
					v -= 40
				}
			}
			v = v*light + rng.NormFloat64()*3
			img.SetRGBA(x, y, color.RGBA{clamp8(v), clamp8(v), clamp8(v * 0.96), 255})
		}
	}
	if defect == "" {
		return img
	}
	paint := func(x, y int, c float64) {
		if x < 0 || y < 0 || x >= SmallW || y >= SmallH {
			return
		}
		img.SetRGBA(x, y, color.RGBA{clamp8(c), clamp8(c), clamp8(c * 0.96), 255})
		mask.SetGray(x, y, color.Gray{255})
	}
	switch defect {
	case "chip":
		// A notch 6–10 pixels wide taken out of the flange's edge.
		a := rng.Float64() * 2 * math.Pi
		size := 6 + rng.Float64()*4
		px, py := cx+(rFlange-2)*math.Cos(a), cy+(rFlange-2)*math.Sin(a)
		for y := int(py - size); y <= int(py+size); y++ {
			for x := int(px - size); x <= int(px+size); x++ {
				fx, fy := float64(x), float64(y)
				if math.Hypot(fx-px, fy-py) < size/2 && math.Hypot(fx-cx, fy-cy) < rFlange {
					paint(x, y, 70+8*math.Sin(fx*0.5+fy*0.3)) // the tray shows through
				}
			}
		}
	case "spot":
		// A dark spot 4–7 pixels across on the head or the flange.
		a := rng.Float64() * 2 * math.Pi
		rr := 15 + rng.Float64()*40
		px, py := cx+rr*math.Cos(a), cy+rr*math.Sin(a)
		d := 2 + rng.Float64()*1.5
		for y := int(py - d - 1); y <= int(py+d+1); y++ {
			for x := int(px - d - 1); x <= int(px+d+1); x++ {
				if math.Hypot(float64(x)-px, float64(y)-py) < d {
					paint(x, y, 60)
				}
			}
		}
	}
	return img
}
