package engine

import "testing"

// BenchmarkInterpreterMobileNetV2 is the Go engine alone (no cgo needed);
// `make bench` also runs it beside TensorFlow Lite in model/tflitec.
func BenchmarkInterpreterMobileNetV2(b *testing.B) {
	m := sharedModel(b, "tf2_mobilenet_v2_1.0_224_ptq.tflite")
	for _, threads := range []int{1, 2} {
		b.Run(map[int]string{1: "threads=1", 2: "threads=2"}[threads], func(b *testing.B) {
			ip, err := NewInterpreter(m, Options{Threads: threads})
			if err != nil {
				b.Fatal(err)
			}
			defer ip.Close()
			ip.Invoke()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ip.Invoke()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/frame")
		})
	}
}
