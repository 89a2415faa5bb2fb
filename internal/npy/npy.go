// Package npy writes NumPy .npy files (format 1.0), so tensors dumped by
// Linesight load with numpy.load for comparison with other runtimes.
package npy

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
)

// Write writes data, raw little-endian elements of the NumPy type descr
// (for example "|u1", "|i1", "<f4", "<i4", "<i8"), with the given shape.
func Write(w io.Writer, descr string, shape []int, data []byte) error {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	// Magic (6) + version (2) + length (2) + header + '\n', padded to 64 bytes.
	total := 10 + len(header) + 1
	pad := (64 - total%64) % 64
	header += strings.Repeat(" ", pad) + "\n"
	if len(header) > 65535 {
		return fmt.Errorf("npy: header of %d bytes", len(header))
	}
	buf := make([]byte, 0, 10+len(header))
	buf = append(buf, "\x93NUMPY\x01\x00"...)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(header)))
	buf = append(buf, header...)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// WriteFile writes an .npy file.
func WriteFile(path, descr string, shape []int, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(f, descr, shape, data); err != nil {
		f.Close()
		return fmt.Errorf("npy: %s: %w", path, err)
	}
	return f.Close()
}
