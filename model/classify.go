package model

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/linesight/linesight/model/tflite"
)

// Class is one entry of a classifier's top-K.
type Class struct {
	Index int     `json:"index"`
	Label string  `json:"label,omitempty"`
	Score float32 `json:"score"`
}

// TopK returns the k highest-scoring classes of a classifier output given
// as raw bytes in its own type. Scores are dequantized; equal scores are
// ordered by lower index first.
func TopK(info TensorInfo, raw []byte, k int, labels []string) ([]Class, error) {
	if len(raw) != info.Bytes() {
		return nil, fmt.Errorf("model: output %s has %d bytes, got %d", info, info.Bytes(), len(raw))
	}
	n := info.Elements()
	all := make([]Class, n)
	for i := 0; i < n; i++ {
		var s float32
		switch info.Type {
		case tflite.Uint8:
			s = info.Dequantize(i, int64(raw[i]))
		case tflite.Int8:
			s = info.Dequantize(i, int64(int8(raw[i])))
		case tflite.Float32:
			s = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		default:
			return nil, fmt.Errorf("model: cannot rank an output of type %v", info.Type)
		}
		all[i] = Class{Index: i, Score: s}
	}
	sort.SliceStable(all, func(a, b int) bool { return all[a].Score > all[b].Score })
	if k > n {
		k = n
	}
	top := all[:k]
	for i := range top {
		if top[i].Index < len(labels) {
			top[i].Label = labels[top[i].Index]
		}
	}
	return top, nil
}

// LabelsBeside loads imagenet_labels.txt or labels.txt from the model's
// folder, one label per line; nil when there is neither.
func LabelsBeside(modelPath string) ([]string, error) {
	dir := filepath.Dir(modelPath)
	for _, name := range []string{"imagenet_labels.txt", "labels.txt"} {
		f, err := os.Open(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var labels []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			labels = append(labels, strings.TrimSpace(sc.Text()))
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("model: reading %s: %w", name, err)
		}
		return labels, nil
	}
	return nil, nil
}
