package daemon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/mqtt"
)

func evidenceFrame(seq uint64) (*rgb.Image, []byte) {
	img := rgb.New(32, 24)
	for i := range img.Pix {
		img.Pix[i] = uint8(int(seq)*7 + i)
	}
	raw, _ := json.Marshal(mqtt.Result{Station: "t1", Seq: seq, Verdict: mqtt.Pass})
	return img, raw
}

// addAll adds frames one at a time, writing each before the next (the
// ring skips frames only when its writer is behind).
func addAll(t *testing.T, e *evidence, seqs ...uint64) {
	t.Helper()
	for _, q := range seqs {
		img, raw := evidenceFrame(q)
		e.add(q, img, raw)
		e.write(<-e.jobs)
	}
}

// TestEvidenceRing: bounded by count and by bytes, oldest first; frames
// come back by seq, pixel for pixel; a reopen keeps whole frames and
// removes what a crash left half written or damaged.
func TestEvidenceRing(t *testing.T) {
	dir := t.TempDir()
	e, err := openEvidence(dir, 3, 1<<20, quiet)
	if err != nil {
		t.Fatal(err)
	}
	addAll(t, e, 1, 2, 3, 4, 5)
	if n, _, lo, hi := e.stats(); n != 3 || lo != 3 || hi != 5 {
		t.Fatalf("ring of 3 after 5 frames: %d frames, %d..%d", n, lo, hi)
	}
	if _, _, err := e.frames([]uint64{2, 4}, ""); err == nil || !strings.Contains(err.Error(), "frames 2 are not kept") {
		t.Errorf("a frame gone from the ring: %v", err)
	}
	paths, results, err := e.frames([]uint64{4, 5}, t.TempDir())
	if err != nil || len(paths) != 2 || results[0].Seq != 4 {
		t.Fatalf("frames 4, 5: %v %v %v", paths, results, err)
	}
	got, err := rgb.ReadFile(paths[0])
	want, _ := evidenceFrame(4)
	if err != nil || got.W != want.W || string(got.Pix) != string(want.Pix) {
		t.Errorf("frame 4 does not read back as written (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, evidenceName(2, ".png"))); !os.IsNotExist(err) {
		t.Errorf("frame 2's image is still on disk: %v", err)
	}

	// What a crash or a bad disk leaves: a temporary file, an image
	// without its result, a result that is not JSON, one for another seq.
	os.WriteFile(filepath.Join(dir, evidenceName(9, ".png")+".123.tmp"), []byte("half"), 0o644)
	os.WriteFile(filepath.Join(dir, evidenceName(7, ".png")), []byte("\x89PNG"), 0o644)
	os.WriteFile(filepath.Join(dir, evidenceName(6, ".png")), []byte("\x89PNG"), 0o644)
	os.WriteFile(filepath.Join(dir, evidenceName(6, ".json")), []byte("{not json"), 0o644)
	os.WriteFile(filepath.Join(dir, evidenceName(8, ".png")), []byte("\x89PNG"), 0o644)
	os.WriteFile(filepath.Join(dir, evidenceName(8, ".json")), []byte(`{"seq":3}`), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("an operator's file"), 0o644)
	os.WriteFile(filepath.Join(dir, "part-0042.png"), []byte("\x89PNG"), 0o644) // not the ring's: kept
	e2, err := openEvidence(dir, 3, 1<<20, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if n, _, lo, hi := e2.stats(); n != 3 || lo != 3 || hi != 5 {
		t.Errorf("reopened: %d frames, %d..%d; want 3, 3..5", n, lo, hi)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 8 { // 3 frames of 2 files, and the operator's two files
		var names []string
		for _, d := range ents {
			names = append(names, d.Name())
		}
		t.Errorf("left in the folder: %v", names)
	}

	// The byte bound: each frame here is a few KiB.
	_, size, _, _ := e2.stats()
	e3, err := openEvidence(dir, 100, size*2/3+1, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if n, b, lo, _ := e3.stats(); n != 2 || lo != 4 || b > size*2/3+1 {
		t.Errorf("byte bound %d: %d frames (%d bytes) from %d", size*2/3+1, n, b, lo)
	}
	// Numbering that goes back (a new outbox) drops the frames of the old
	// numbering at or above it: seq 4 must never find an old part.
	addAll(t, e3, 4)
	if n, _, lo, hi := e3.stats(); n != 1 || lo != 4 || hi != 4 {
		t.Errorf("after the numbering went back to 4: %d frames, %d..%d", n, lo, hi)
	}
	if _, err := os.Stat(filepath.Join(dir, evidenceName(5, ".png"))); !os.IsNotExist(err) {
		t.Errorf("frame 5 of the old numbering is still on disk: %v", err)
	}
	// A writer that is behind skips frames, never waits.
	for q := uint64(10); q < 20; q++ {
		img, raw := evidenceFrame(q)
		e3.add(q, img, raw)
	}
	if e3.skipped.Load() != 10-evidenceSlots {
		t.Errorf("skipped %d of 10 frames with %d slots", e3.skipped.Load(), evidenceSlots)
	}
}

// FuzzEvidenceResult: a stored result read back at start never panics.
func FuzzEvidenceResult(f *testing.F) {
	_, raw := evidenceFrame(12)
	f.Add(raw, uint64(12))
	f.Add([]byte(`{"seq":"x"}`), uint64(1))
	f.Add([]byte(`null`), uint64(0))
	f.Fuzz(func(t *testing.T, raw []byte, seq uint64) {
		r, err := parseEvidenceResult(raw, seq)
		if err == nil && r.Seq != seq {
			t.Fatalf("accepted frame %d's file holding frame %d", seq, r.Seq)
		}
	})
}
