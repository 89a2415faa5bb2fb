package sampleline

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestKinds: every kind writes MVTec's layout at its frame size, and every
// defect's mask marks pixels that differ from the part's look (a defect
// image and its mask agree), with thin defects kept thin: a strip crack's
// mask is at most a few pixels across along any column it crosses.
func TestKinds(t *testing.T) {
	for _, c := range []struct {
		kind string
		w, h int
	}{{KindWasher, Size, Size}, {KindStrip, StripW, StripH}, {KindSmall, SmallW, SmallH}} {
		dir := t.TempDir()
		if os.Getenv("SAMPLELINE_OUT") != "" {
			dir = filepath.Join(os.Getenv("SAMPLELINE_OUT"), c.kind)
		}
		if err := WriteKind(dir, c.kind, Counts{Train: 2, TestGood: 1, PerDefect: 2}, 3); err != nil {
			t.Fatal(err)
		}
		defects, _ := DefectsOf(c.kind)
		for _, d := range append([]string{"good"}, defects...) {
			img := readPNG(t, filepath.Join(dir, "test", d, "000.png"))
			if b := img.Bounds(); b.Dx() != c.w || b.Dy() != c.h {
				t.Fatalf("%s/%s: %dx%d, want %dx%d", c.kind, d, b.Dx(), b.Dy(), c.w, c.h)
			}
			if d == "good" {
				continue
			}
			for i := range 2 {
				m := readPNG(t, filepath.Join(dir, "ground_truth", d, []string{"000_mask.png", "001_mask.png"}[i])).(*image.Gray)
				on := 0
				for _, v := range m.Pix {
					if v != 0 {
						on++
					}
				}
				if on < 10 {
					t.Errorf("%s/%s %d: mask has %d pixels", c.kind, d, i, on)
				}
				if c.kind == KindStrip && d == "crack" {
					// A transverse crack crosses columns; along each it is 2-4
					// pixels wide (at most ~5 where it bends by 25°).
					worst := 0
					for x := 0; x < m.Rect.Dx(); x++ {
						n := 0
						for y := 0; y < m.Rect.Dy(); y++ {
							if m.Pix[y*m.Stride+x] != 0 {
								n++
							}
						}
						worst = max(worst, n)
					}
					if worst > 8 {
						t.Errorf("strip crack %d: %d mask pixels in one column, not a thin crack", i, worst)
					}
				}
			}
		}
	}
	if _, err := DefectsOf("sheet"); err == nil {
		t.Error("an unknown kind was accepted")
	}
}
