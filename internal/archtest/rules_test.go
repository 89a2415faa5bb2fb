package archtest

import (
	"slices"
	"strings"
	"testing"
)

// synthetic is a made-up import graph of the module in which every rule
// is broken once, so the rules are seen to fire (today's code keeps most
// of them, which alone would not show that they look at anything).
func synthetic() *Graph {
	const mod = "github.com/linesight/linesight"
	g := &Graph{Module: mod, Packages: map[string]*Package{}}
	add := func(path string, main bool, cgo bool, imports ...string) {
		p := &Package{ImportPath: path, Imports: imports}
		if main {
			p.ImportPath = mod + "/" + path
			p.Module = &struct {
				Path string
				Main bool
			}{mod, true}
			g.Matched = append(g.Matched, p.ImportPath)
			for i, imp := range imports {
				if !strings.Contains(imp, ".") {
					p.Imports[i] = mod + "/" + imp
				}
			}
		}
		if cgo {
			p.CgoFiles = []string{"c.go"}
		}
		g.Packages[p.ImportPath] = p
	}
	add("gocv.io/x/gocv", false, true)
	add("github.com/eclipse/paho.mqtt.golang", false, false)
	add("github.com/mochi-mqtt/server/v2", false, false)
	add("example.com/usesc", false, true)
	add("github.com/nlpodyssey/gopickle/pickle", false, false)
	add("internal/qgemm", true, false)
	add("internal/parallel", true, false, "example.com/usesc")
	add("internal/rgb", true, false)
	add("internal/heatmap", true, false, "internal/rgb", "internal/qgemm")
	add("internal/jpeg", true, false, "internal/rgb", "internal/qgemm")
	add("internal/npy", true, false)
	add("model/tflite", true, false)
	add("model/torchckpt", true, false, "github.com/nlpodyssey/gopickle/pickle")
	add("model/resnet", true, false, "model/torchckpt")
	add("model/engine", true, true, "internal/qgemm")
	add("model", true, false, "model/engine", "model/tflite")
	add("bank", true, false, "internal/parallel", "gocv.io/x/gocv")
	add("patchcore", true, false, "model", "bank", "github.com/nlpodyssey/gopickle/pickle")
	add("camera", true, false, "gocv.io/x/gocv", "internal/rgb")
	add("mqtt", true, false, "github.com/eclipse/paho.mqtt.golang", "github.com/mochi-mqtt/server/v2", "cmd/linesight")
	add("mqtt/sparkplug", true, false, "github.com/eclipse/paho.mqtt.golang")
	add("config", true, false, "github.com/mochi-mqtt/server/v2", "daemon")
	add("daemon", true, false, "camera", "patchcore", "mqtt", "internal/npy", "model/resnet")
	add("cmd/linesight", true, false, "daemon", "config")
	return g
}

func TestRulesFireOnViolations(t *testing.T) {
	g := synthetic()
	got := map[string][]string{}
	for _, r := range rules {
		got[r.name] = r.violations(g)
	}
	expect := map[string][]string{
		"the core is pure Go": {
			"internal/parallel imports example.com/usesc (cgo: c.go): internal/parallel -> example.com/usesc",
			"model/engine itself uses what it must not (cgo: c.go)",
			"model imports model/engine (cgo: c.go): model -> model/engine",
			"bank imports gocv.io/x/gocv (GoCV): bank -> gocv.io/x/gocv",
			"bank depends on example.com/usesc (cgo: c.go): bank -> internal/parallel -> example.com/usesc",
			"patchcore depends on model/engine (cgo: c.go): patchcore -> model -> model/engine",
			"patchcore depends on gocv.io/x/gocv (GoCV): patchcore -> bank -> gocv.io/x/gocv",
			"patchcore depends on example.com/usesc (cgo: c.go): patchcore -> bank -> internal/parallel -> example.com/usesc",
		},
		"the core has no GoCV and no MQTT, with the TensorFlow Lite backend too": {
			"bank imports gocv.io/x/gocv (GoCV): bank -> gocv.io/x/gocv",
			"patchcore depends on gocv.io/x/gocv (GoCV): patchcore -> bank -> gocv.io/x/gocv",
		},
		"the daemon loads models through model's API, not from file formats": {
			"daemon imports internal/npy (a file format): daemon -> internal/npy",
		},
		"patchcore does not need the checkpoint converter": {
			"patchcore imports github.com/nlpodyssey/gopickle/pickle (the checkpoint converter's pickle reader): patchcore -> github.com/nlpodyssey/gopickle/pickle",
		},
		"image code does not use the GEMM kernels": {
			"internal/heatmap imports internal/qgemm (the GEMM kernels): internal/heatmap -> internal/qgemm",
			"internal/jpeg imports internal/qgemm (the GEMM kernels): internal/jpeg -> internal/qgemm",
		},
		"only camera imports GoCV": {
			"bank imports gocv.io/x/gocv (GoCV): bank -> gocv.io/x/gocv",
		},
		"only mqtt imports paho and mochi": {
			"config imports github.com/mochi-mqtt/server/v2 (an MQTT library): config -> github.com/mochi-mqtt/server/v2",
		},
		"only commands import the daemon": {
			"config imports daemon (the daemon: only a command wires it in): config -> daemon",
		},
		"nothing imports a command": {
			"mqtt imports cmd/linesight (a command): mqtt -> cmd/linesight",
		},
	}
	for name, w := range expect {
		g := got[name]
		slices.Sort(g)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			t.Errorf("rule %q reports\n\t%s\nwant\n\t%s", name, strings.Join(g, "\n\t"), strings.Join(w, "\n\t"))
		}
	}
	for _, r := range rules {
		if _, ok := expect[r.name]; !ok {
			t.Errorf("rule %q has no case here", r.name)
		}
	}
}
