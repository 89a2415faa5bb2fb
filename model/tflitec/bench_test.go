//go:build tflite && cgo

package tflitec

import (
	"path/filepath"
	"testing"

	"github.com/linesight/linesight/model"
	"github.com/linesight/linesight/model/engine"
	"github.com/linesight/linesight/model/tflite"
)

// BenchmarkMobileNetV2 times the tf2 MobileNetV2 forward pass per frame with
// the Go engine and with the TensorFlow Lite C library, in the same run.
func BenchmarkMobileNetV2(b *testing.B) {
	shared := sharedDir(b)
	for _, name := range []string{"tf2_mobilenet_v2_1.0_224_ptq.tflite", "mobilenet_v2_1.0_224_quant.tflite"} {
		m, err := tflite.ReadFile(filepath.Join(shared, "models", "mobilenet_v2", name))
		if err != nil {
			b.Fatal(err)
		}
		for _, threads := range []int{1, 2} {
			for _, backend := range []string{"go", "tflite"} {
				b.Run(name[:len(name)-7]+"/"+backend+"/threads="+string(rune('0'+threads)), func(b *testing.B) {
					var bb model.Backbone
					if backend == "go" {
						bb, err = engine.NewInterpreter(m, engine.Options{Threads: threads})
					} else {
						bb, err = New(m, nil, threads)
					}
					if err != nil {
						b.Fatal(err)
					}
					defer bb.Close()
					in := make([]byte, bb.Input().Bytes())
					for i := range in {
						in[i] = byte(i * 7)
					}
					bb.SetInput(in)
					bb.Invoke()
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						bb.Invoke()
					}
					b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/frame")
				})
			}
		}
	}
}
