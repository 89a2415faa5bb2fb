package daemon

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/linesight/linesight/internal/rgb"
	"github.com/linesight/linesight/mqtt"
)

// evidence is the ring of the last inspected frames, kept on disk with
// their results so that they survive a restart and an operator can say
// "frames 1042 and 1043 were good parts" (cmd/bank/append) after the fact.
// It is bounded by a count and by bytes; the oldest frames go first.
//
// Each frame is two files named by its seq: <seq>.png (the frame as
// inspected, after the camera's region of interest) and <seq>.json (its
// mqtt.Result). The PNG is written first and the JSON last, each to a
// temporary name and renamed: a frame is in the ring when its JSON is,
// so a crash leaves at most a stray file, removed at the next open.
//
// Encoding a PNG takes longer than inspecting a frame on a fast line. The
// pipeline never waits for it: a frame arriving while the writer still
// has evidenceSlots frames in hand is skipped and counted. A line that
// wants every frame kept runs slower than the writer (a triggered line
// does).
type evidence struct {
	dir       string
	maxFrames int
	maxBytes  int64
	log       *slog.Logger

	mu      sync.Mutex
	entries []evidenceEntry // by seq, ascending
	bytes   int64

	jobs    chan evidenceJob
	free    chan *rgb.Image
	skipped atomic.Uint64
	failed  atomic.Uint64
}

type evidenceEntry struct {
	seq  uint64
	size int64
}

type evidenceJob struct {
	seq    uint64
	img    *rgb.Image
	result []byte
}

// evidenceSlots is how many frames may wait for the PNG writer.
const evidenceSlots = 2

// openEvidence opens (creating) the ring in dir, keeping what a previous
// run left that is whole and within the bounds.
func openEvidence(dir string, maxFrames int, maxBytes int64, log *slog.Logger) (*evidence, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	e := &evidence{dir: dir, maxFrames: maxFrames, maxBytes: maxBytes, log: log,
		jobs: make(chan evidenceJob, evidenceSlots), free: make(chan *rgb.Image, evidenceSlots)}
	for range evidenceSlots {
		e.free <- &rgb.Image{}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	have := map[uint64]bool{}
	for _, d := range ents {
		name := d.Name()
		seq, ok := strings.CutSuffix(name, ".json")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil || name != evidenceName(n, ".json") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			_, err = parseEvidenceResult(raw, n)
		}
		fi, perr := os.Stat(filepath.Join(dir, evidenceName(n, ".png")))
		if err != nil || perr != nil {
			log.Warn("evidence: dropping a damaged frame", "file", name, "err", errors.Join(err, perr))
			continue
		}
		have[n] = true
		e.entries = append(e.entries, evidenceEntry{seq: n, size: fi.Size() + int64(len(raw))})
		e.bytes += fi.Size() + int64(len(raw))
	}
	// The ring's own files that are not a whole frame: temporary files, a
	// PNG whose JSON was never written, damaged frames. Files with other
	// names are not the ring's and stay (evidence.dir may be shared).
	for _, d := range ents {
		n, ok := ringFile(d.Name())
		if ok && !have[n] {
			os.Remove(filepath.Join(dir, d.Name()))
		}
	}
	slices.SortFunc(e.entries, func(a, b evidenceEntry) int { return cmp.Compare(a.seq, b.seq) })
	e.mu.Lock()
	e.trimLocked()
	e.mu.Unlock()
	return e, nil
}

// bySeq orders entries against a seq, for binary search.
func bySeq(a evidenceEntry, seq uint64) int { return cmp.Compare(a.seq, seq) }

func evidenceName(seq uint64, ext string) string { return fmt.Sprintf("%020d%s", seq, ext) }

// ringFile reports whether name is one of the ring's files (a frame's
// image or result, or a temporary one being written), and its seq; a
// temporary file counts as no frame's (seq's entry is never it).
func ringFile(name string) (uint64, bool) {
	if len(name) < 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(name[:20], 10, 64)
	if err != nil {
		return 0, false
	}
	rest := name[20:]
	switch {
	case rest == ".png" || rest == ".json":
		return n, true
	case (strings.HasPrefix(rest, ".png.") || strings.HasPrefix(rest, ".json.")) && strings.HasSuffix(rest, ".tmp"):
		return ^uint64(0), true // never a kept frame's seq
	}
	return 0, false
}

// parseEvidenceResult reads a stored result and checks that it is the
// frame its file names.
func parseEvidenceResult(raw []byte, seq uint64) (mqtt.Result, error) {
	var r mqtt.Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("evidence: result of frame %d: %w", seq, err)
	}
	if r.Seq != seq {
		return r, fmt.Errorf("evidence: the result in frame %d's file is for frame %d", seq, r.Seq)
	}
	return r, nil
}

// add hands a copy of an inspected frame and its result to the writer;
// it never waits (see evidence).
func (e *evidence) add(seq uint64, img *rgb.Image, result []byte) {
	var buf *rgb.Image
	select {
	case buf = <-e.free:
	default:
		e.skipped.Add(1)
		return
	}
	buf.CopyFrom(img)
	e.jobs <- evidenceJob{seq: seq, img: buf, result: result} // a slot is free: it was taken from e.free
}

// run writes frames until stop is closed and the queue is empty.
func (e *evidence) run(stop <-chan struct{}) {
	for {
		select {
		case j := <-e.jobs:
			e.write(j)
		case <-stop:
			for {
				select {
				case j := <-e.jobs:
					e.write(j)
				default:
					return
				}
			}
		}
	}
}

func (e *evidence) write(j evidenceJob) {
	defer func() { e.free <- j.img }()
	pngSize, err := writePNG(filepath.Join(e.dir, evidenceName(j.seq, ".png")), j.img)
	if err == nil {
		_, err = writeFile(filepath.Join(e.dir, evidenceName(j.seq, ".json")), func(w *bufio.Writer) error {
			_, err := w.Write(j.result)
			return err
		})
	}
	if err != nil {
		if e.failed.Add(1) == 1 {
			e.log.Error("evidence: frame not kept (further failures are only counted)", "seq", j.seq, "err", err)
		}
		os.Remove(filepath.Join(e.dir, evidenceName(j.seq, ".png")))
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// The camera's numbering persists across restarts (with the outbox),
	// so seq only grows. If it went back (the outbox file deleted, the
	// station renamed), the frames at or above it are another numbering's:
	// they go, or an append by seq could take a different part.
	if n := len(e.entries); n > 0 && e.entries[n-1].seq >= j.seq {
		e.log.Warn("evidence: frame numbers went back (a new outbox?); dropping the frames numbered from here up", "seq", j.seq, "newest", e.entries[n-1].seq)
		for len(e.entries) > 0 && e.entries[len(e.entries)-1].seq >= j.seq {
			old := e.entries[len(e.entries)-1]
			e.entries = e.entries[:len(e.entries)-1]
			e.bytes -= old.size
			if old.seq != j.seq {
				os.Remove(filepath.Join(e.dir, evidenceName(old.seq, ".json")))
				os.Remove(filepath.Join(e.dir, evidenceName(old.seq, ".png")))
			}
		}
	}
	size := pngSize + int64(len(j.result))
	i, _ := slices.BinarySearchFunc(e.entries, j.seq, bySeq)
	e.entries = slices.Insert(e.entries, i, evidenceEntry{seq: j.seq, size: size})
	e.bytes += size
	e.trimLocked()
}

// writePNG writes img to path as a PNG, fast rather than small (frames
// are written while the line runs), through a temporary file and a rename.
func writePNG(path string, img *rgb.Image) (int64, error) {
	return writeFile(path, func(w *bufio.Writer) error {
		enc := png.Encoder{CompressionLevel: png.BestSpeed}
		return enc.Encode(w, img.ToImage())
	})
}

// writeFile writes path through a temporary file beside it and a rename,
// returning its size.
func writeFile(path string, fill func(*bufio.Writer) error) (int64, error) {
	name := filepath.Base(path)
	f, err := os.CreateTemp(filepath.Dir(path), name+".*.tmp")
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	err = fill(w)
	if err == nil {
		err = w.Flush()
	}
	var size int64
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil {
			size = fi.Size()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return size, nil
}

// trimLocked removes the oldest frames beyond the bounds.
func (e *evidence) trimLocked() {
	for len(e.entries) > 0 && (len(e.entries) > e.maxFrames || e.bytes > e.maxBytes) {
		old := e.entries[0]
		e.entries = e.entries[1:]
		e.bytes -= old.size
		os.Remove(filepath.Join(e.dir, evidenceName(old.seq, ".json")))
		os.Remove(filepath.Join(e.dir, evidenceName(old.seq, ".png")))
	}
}

// frames returns the image files and results of the frames seqs, or an
// error naming the ones the ring does not hold. With dst, the image files
// are linked (or copied) into dst first, so that the ring may drop them
// while the caller works.
func (e *evidence) frames(seqs []uint64, dst string) ([]string, []mqtt.Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var missing []string
	paths := make([]string, 0, len(seqs))
	results := make([]mqtt.Result, 0, len(seqs))
	for _, q := range seqs {
		_, ok := slices.BinarySearchFunc(e.entries, q, bySeq)
		if !ok {
			missing = append(missing, strconv.FormatUint(q, 10))
			continue
		}
		raw, err := os.ReadFile(filepath.Join(e.dir, evidenceName(q, ".json")))
		if err != nil {
			return nil, nil, fmt.Errorf("evidence: frame %d: %w", q, err)
		}
		r, err := parseEvidenceResult(raw, q)
		if err != nil {
			return nil, nil, err
		}
		path := filepath.Join(e.dir, evidenceName(q, ".png"))
		if dst != "" {
			keep := filepath.Join(dst, evidenceName(q, ".png"))
			if err := linkOrCopy(path, keep); err != nil {
				return nil, nil, fmt.Errorf("evidence: frame %d: %w", q, err)
			}
			path = keep
		}
		paths, results = append(paths, path), append(results, r)
	}
	if len(missing) > 0 {
		lo, hi := e.rangeLocked()
		return nil, nil, fmt.Errorf("evidence: frames %s are not kept (the ring holds %d frames, %d..%d)", strings.Join(missing, ", "), len(e.entries), lo, hi)
	}
	return paths, results, nil
}

// linkOrCopy makes dst the same file as src: a hard link, or a copy where
// links are not possible (another file system).
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	raw, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, raw, 0o640)
}

func (e *evidence) rangeLocked() (lo, hi uint64) {
	if len(e.entries) == 0 {
		return 0, 0
	}
	return e.entries[0].seq, e.entries[len(e.entries)-1].seq
}

// stats is what the ring holds: frames, bytes, oldest and newest seq.
func (e *evidence) stats() (n int, bytes int64, lo, hi uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	lo, hi = e.rangeLocked()
	return len(e.entries), e.bytes, lo, hi
}
