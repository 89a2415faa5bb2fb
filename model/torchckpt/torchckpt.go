// Package torchckpt reads the tensors of PyTorch checkpoints written by
// torch.save: the zip format (PyTorch >= 1.6) and the legacy pickle format,
// holding a state_dict or a checkpoint dict with one ("state_dict", "model",
// "model_state_dict", "net"). Unpickling is done by
// github.com/nlpodyssey/gopickle; this package checks the file type first,
// turns any panic into an error, and copies tensors out as dense float32.
package torchckpt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"
)

// ErrFormat: the file is not a checkpoint this package reads.
var ErrFormat = errors.New("torchckpt: not a readable PyTorch checkpoint")

// Tensor is a dense row-major float32 tensor.
type Tensor struct {
	Shape []int
	Data  []float32
}

// StateDict maps parameter and buffer names to tensors.
type StateDict map[string]*Tensor

// Keys returns the names, sorted.
func (s StateDict) Keys() []string {
	k := make([]string, 0, len(s))
	for n := range s {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// maxFile bounds checkpoints read (ResNet-50 is ~100 MB).
const maxFile = 2 << 30

// Load reads the state dict of the checkpoint at path. Non-floating-point
// entries (num_batches_tracked) are skipped; a "module." prefix from
// DataParallel is removed.
func Load(path string) (sd StateDict, err error) {
	defer func() {
		if r := recover(); r != nil {
			sd, err = nil, fmt.Errorf("%w: %s: unpickling failed: %v", ErrFormat, path, r)
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("torchckpt: %w", err)
	}
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	fi, statErr := f.Stat()
	f.Close()
	switch {
	case statErr != nil:
		return nil, fmt.Errorf("torchckpt: %w", statErr)
	case fi.Size() > maxFile:
		return nil, fmt.Errorf("%w: %s is %d bytes", ErrFormat, path, fi.Size())
	case n == 4 && bytes.Equal(head, []byte("PK\x03\x04")):
		// zip: torch.save's default since PyTorch 1.6
		if err := prescanZip(path, fi.Size()); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
		}
	case n >= 2 && head[0] == 0x80 && head[1] >= 2:
		// a pickle stream: the legacy format starts with a pickled magic number
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("torchckpt: %w", err)
		}
		if err := prescanLegacy(data); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
		}
	default:
		return nil, fmt.Errorf("%w: %s is neither a zip nor a pickle file (head %x)", ErrFormat, path, head[:n])
	}
	obj, err := pytorch.Load(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
	}
	return stateDict(obj)
}

// stateDict finds the tensors in an unpickled object.
func stateDict(obj any) (StateDict, error) {
	entries, ok := dictEntries(obj)
	if !ok {
		return nil, fmt.Errorf("%w: top-level object is %T, not a dict", ErrFormat, obj)
	}
	// A checkpoint dict holding the state dict under a well-known key.
	for _, key := range []string{"state_dict", "model_state_dict", "model", "net"} {
		for _, e := range entries {
			if k, _ := e.key.(string); k == key {
				if _, ok := dictEntries(e.value); ok {
					return stateDict(e.value)
				}
			}
		}
	}
	sd := StateDict{}
	for _, e := range entries {
		name, ok := e.key.(string)
		if !ok {
			continue
		}
		t, ok := e.value.(*pytorch.Tensor)
		if !ok {
			continue
		}
		dense, ok, err := denseFloat(t)
		if err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %v", ErrFormat, name, err)
		}
		if !ok {
			continue // integer buffers such as num_batches_tracked
		}
		sd[strings.TrimPrefix(name, "module.")] = dense
	}
	if len(sd) == 0 {
		return nil, fmt.Errorf("%w: no floating-point tensors found", ErrFormat)
	}
	return sd, nil
}

type entry struct{ key, value any }

func dictEntries(obj any) ([]entry, bool) {
	switch d := obj.(type) {
	case *types.OrderedDict:
		var out []entry
		if d.List == nil {
			return nil, true
		}
		for el := d.List.Front(); el != nil; el = el.Next() {
			if e, ok := el.Value.(*types.OrderedDictEntry); ok {
				out = append(out, entry{e.Key, e.Value})
			}
		}
		return out, true
	case *types.Dict:
		var out []entry
		for _, e := range *d {
			out = append(out, entry{e.Key, e.Value})
		}
		return out, true
	case map[any]any:
		var out []entry
		for k, v := range d {
			out = append(out, entry{k, v})
		}
		sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i].key) < fmt.Sprint(out[j].key) })
		return out, true
	}
	return nil, false
}

// denseFloat copies a (possibly strided) floating-point tensor into a dense
// float32 one. ok is false for integer and boolean tensors.
func denseFloat(t *pytorch.Tensor) (*Tensor, bool, error) {
	var at func(i int) float32
	var size int
	switch s := t.Source.(type) {
	case *pytorch.FloatStorage:
		at, size = func(i int) float32 { return s.Data[i] }, len(s.Data)
	case *pytorch.DoubleStorage:
		at, size = func(i int) float32 { return float32(s.Data[i]) }, len(s.Data)
	case *pytorch.HalfStorage:
		at, size = func(i int) float32 { return s.Data[i] }, len(s.Data)
	default:
		return nil, false, nil
	}
	if len(t.Stride) != len(t.Size) {
		return nil, false, fmt.Errorf("%d strides for %d dimensions", len(t.Stride), len(t.Size))
	}
	n := 1
	for _, d := range t.Size {
		if d < 0 || (d > 0 && int64(n) > int64(1<<31)/int64(d)) {
			return nil, false, fmt.Errorf("bad shape %v", t.Size)
		}
		n *= d
	}
	if n > size {
		// Only zero strides could do this; checkpoints never hold such views,
		// and a damaged file must not make us allocate by its shape alone.
		return nil, false, fmt.Errorf("shape %v holds %d elements, its storage %d", t.Size, n, size)
	}
	out := &Tensor{Shape: append([]int(nil), t.Size...), Data: make([]float32, n)}
	if n == 0 {
		return out, true, nil
	}
	// The largest offset reached must lie inside the storage.
	last := t.StorageOffset
	for i, d := range t.Size {
		if t.Stride[i] < 0 {
			return nil, false, fmt.Errorf("negative stride %v", t.Stride)
		}
		last += (d - 1) * t.Stride[i]
	}
	if t.StorageOffset < 0 || last >= size {
		return nil, false, fmt.Errorf("shape %v, strides %v and offset %d reach past a storage of %d", t.Size, t.Stride, t.StorageOffset, size)
	}
	idx := make([]int, len(t.Size))
	for k := range n {
		off := t.StorageOffset
		for i, v := range idx {
			off += v * t.Stride[i]
		}
		out.Data[k] = at(off)
		for i := len(idx) - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < t.Size[i] {
				break
			}
			idx[i] = 0
		}
	}
	return out, true, nil
}
