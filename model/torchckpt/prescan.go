package torchckpt

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"path"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// gopickle allocates what a file declares before reading it: a pickle
// opcode's length, a storage's element count. A damaged or hostile file can
// declare terabytes, which is a fatal out-of-memory, not a recoverable panic.
// prescan therefore walks the file first and checks every declared length
// against the bytes that actually follow; only then does gopickle load it.

// maxPickle bounds the pickled object graph (data.pkl is a few kB for a
// state dict; tensors live outside it).
const maxPickle = 64 << 20

// checkPickle walks the opcodes of the pickle at the start of b and returns
// its length (through STOP), or an error if a declared length runs past the
// data or an opcode is unknown.
func checkPickle(b []byte) (int, error) {
	p := 0
	need := func(n uint64) error {
		if n > uint64(len(b)-p) {
			return fmt.Errorf("pickle opcode at %d declares %d bytes, %d remain", p, n, len(b)-p)
		}
		return nil
	}
	lenArg := func(w int) (uint64, error) {
		if err := need(uint64(w)); err != nil {
			return 0, err
		}
		var v uint64
		for i := w - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[p+i])
		}
		p += w
		return v, nil
	}
	line := func() error {
		i := bytes.IndexByte(b[p:], '\n')
		if i < 0 {
			return fmt.Errorf("pickle: unterminated line at %d", p)
		}
		p += i + 1
		return nil
	}
	for p < len(b) {
		op := b[p]
		p++
		var err error
		switch op {
		case '.': // STOP
			return p, nil
		case 0x80, 'K', 'h', 'q', 0x82: // PROTO BININT1 BINGET BINPUT EXT1
			err = need(1)
			p++
		case 'M', 0x83: // BININT2 EXT2
			err = need(2)
			p += 2
		case 'J', 'j', 'r', 0x84: // BININT LONG_BINGET LONG_BINPUT EXT4
			err = need(4)
			p += 4
		case 'G': // BINFLOAT
			err = need(8)
			p += 8
		case 0x95: // FRAME: its opcodes follow inline, but its size is allocated
			var n uint64
			if n, err = lenArg(8); err == nil {
				err = need(n)
			}
		case 'U', 0x8c, 'C', 0x8a: // SHORT_BINSTRING SHORT_BINUNICODE SHORT_BINBYTES LONG1
			var n uint64
			if n, err = lenArg(1); err == nil {
				if err = need(n); err == nil {
					p += int(n)
				}
			}
		case 'T', 'X', 'B', 0x8b: // BINSTRING BINUNICODE BINBYTES LONG4
			var n uint64
			if n, err = lenArg(4); err == nil {
				if err = need(n); err == nil {
					p += int(n)
				}
			}
		case 0x8d, 0x8e, 0x96: // BINUNICODE8 BINBYTES8 BYTEARRAY8
			var n uint64
			if n, err = lenArg(8); err == nil {
				if err = need(n); err == nil {
					p += int(n)
				}
			}
		case 'I', 'L', 'F', 'S', 'V', 'g', 'p', 'P': // one text line
			err = line()
		case 'c', 'i': // GLOBAL INST: two lines
			if err = line(); err == nil {
				err = line()
			}
		case '(', '0', '1', '2', 'N', 0x88, 0x89, 'R', 'b', 'a', 'e', 'd', '}', 'l', ']', 'o', 's', 'u',
			't', ')', 0x85, 0x86, 0x87, 'Q', 0x81, 0x92, 0x93, 0x94, 0x8f, 0x90, 0x91, 0x97, 0x98:
		default:
			return 0, fmt.Errorf("pickle: unknown opcode 0x%02x at %d", op, p-1)
		}
		if err != nil {
			return 0, err
		}
		if p > len(b) {
			return 0, fmt.Errorf("pickle: truncated at %d", len(b))
		}
	}
	return 0, fmt.Errorf("pickle: no STOP opcode")
}

// storageRef is a storage a pickle refers to.
type storageRef struct {
	key   string
	numel int
	elem  int // bytes per element
}

type storageClass struct{ elem int }

var elemSize = map[string]int{
	"FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2, "CharStorage": 1,
	"ByteStorage": 1, "BoolStorage": 1, "ShortStorage": 2, "IntStorage": 4, "LongStorage": 8,
}

type ignoreCall struct{}

func (ignoreCall) Call(...interface{}) (interface{}, error) { return nil, nil }

// scanStorages unpickles a checked pickle with stand-ins for torch's
// classes, collecting the storages it references.
func scanStorages(b []byte, legacy bool) ([]storageRef, error) {
	var refs []storageRef
	u := pickle.NewUnpickler(bytes.NewReader(b))
	u.FindClass = func(module, name string) (interface{}, error) {
		if module == "torch" {
			if e, ok := elemSize[name]; ok {
				return storageClass{e}, nil
			}
		}
		if module == "collections" && name == "OrderedDict" {
			return &types.OrderedDictClass{}, nil
		}
		if module == "torch._utils" {
			return ignoreCall{}, nil
		}
		return types.NewGenericClass(module, name), nil
	}
	u.PersistentLoad = func(id interface{}) (interface{}, error) {
		t, ok := id.(*types.Tuple)
		if !ok || t.Len() < 5 {
			return nil, nil
		}
		if s, _ := t.Get(0).(string); s != "storage" {
			return nil, nil
		}
		cls, ok1 := t.Get(1).(storageClass)
		key, ok2 := t.Get(2).(string)
		n, ok3 := t.Get(4).(int)
		if !ok1 || !ok2 || !ok3 || n < 0 {
			return nil, fmt.Errorf("storage reference %v", id)
		}
		if legacy && t.Len() >= 6 && t.Get(5) != nil {
			return nil, fmt.Errorf("storage views are not supported")
		}
		refs = append(refs, storageRef{key, n, cls.elem})
		return nil, nil
	}
	if _, err := u.Load(); err != nil {
		return nil, err
	}
	return refs, nil
}

// prescanZip checks a zip checkpoint: data.pkl, and every storage record
// against the size its reference declares.
func prescanZip(path string, size int64) error {
	r, err := zip.OpenReader(path)
	if err != nil {
		return err
	}
	defer r.Close()
	records := map[string]*zip.File{}
	for _, f := range r.File {
		records[path2base(f.Name)] = f
	}
	df := records["data.pkl"]
	if df == nil {
		return fmt.Errorf("no data.pkl")
	}
	if df.UncompressedSize64 > maxPickle {
		return fmt.Errorf("data.pkl declares %d bytes", df.UncompressedSize64)
	}
	rc, err := df.Open()
	if err != nil {
		return err
	}
	pk, err := io.ReadAll(io.LimitReader(rc, maxPickle))
	rc.Close()
	if err != nil {
		return fmt.Errorf("data.pkl: %v", err)
	}
	if _, err := checkPickle(pk); err != nil {
		return fmt.Errorf("data.pkl: %v", err)
	}
	refs, err := scanStorages(pk, false)
	if err != nil {
		return fmt.Errorf("data.pkl: %v", err)
	}
	for _, s := range refs {
		f := records[s.key]
		if f == nil {
			return fmt.Errorf("storage %q has no record", s.key)
		}
		want := uint64(s.numel) * uint64(s.elem)
		if f.UncompressedSize64 < want || f.UncompressedSize64 > uint64(size) || (f.Method == zip.Store && f.CompressedSize64 != f.UncompressedSize64) {
			return fmt.Errorf("storage %q declares %d elements of %d bytes, its record holds %d", s.key, s.numel, s.elem, f.UncompressedSize64)
		}
	}
	return nil
}

// path2base names a record as gopickle does (path.Split's file part, which,
// unlike path.Base, is empty for names ending in '/'), so that both look at
// the same record.
func path2base(name string) string {
	_, file := path.Split(name)
	return file
}

// prescanLegacy checks a legacy checkpoint: the magic number, protocol and
// system-info pickles, the object pickle, the storage key list, then each
// storage's declared size against the bytes that follow.
func prescanLegacy(data []byte) error {
	p := 0
	next := func() ([]byte, error) {
		n, err := checkPickle(data[p:])
		if err != nil {
			return nil, err
		}
		b := data[p : p+n]
		p += n
		return b, nil
	}
	for i := 0; i < 3; i++ { // magic number, protocol version, sys info
		if _, err := next(); err != nil {
			return err
		}
	}
	obj, err := next()
	if err != nil {
		return err
	}
	refs, err := scanStorages(obj, true)
	if err != nil {
		return err
	}
	byKey := map[string]storageRef{}
	for _, r := range refs {
		byKey[r.key] = r
	}
	kb, err := next()
	if err != nil {
		return err
	}
	u := pickle.NewUnpickler(bytes.NewReader(kb))
	keys, err := u.Load()
	if err != nil {
		return err
	}
	list, ok := keys.(*types.List)
	if !ok {
		return fmt.Errorf("storage key list is %T", keys)
	}
	for _, k := range *list {
		key, _ := k.(string)
		r, ok := byKey[key]
		if !ok {
			return fmt.Errorf("storage key %v is not referenced", k)
		}
		if len(data)-p < 8 {
			return fmt.Errorf("storage %q: truncated size", key)
		}
		n := binary.LittleEndian.Uint64(data[p:])
		p += 8
		if n != uint64(r.numel) || n*uint64(r.elem) > uint64(len(data)-p) {
			return fmt.Errorf("storage %q declares %d elements, its reference %d, %d bytes remain", key, n, r.numel, len(data)-p)
		}
		p += int(n) * r.elem
	}
	return nil
}
