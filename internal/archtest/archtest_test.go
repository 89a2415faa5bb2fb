package archtest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/linesight/linesight/internal/testenv"
)

// build is one build configuration whose import graph the rules read.
type build struct {
	name     string
	env      []string
	tags     []string
	patterns []string
}

// corePatterns are the pure-Go core: the model, the bank, the method and
// the internal packages (docs/ARCHITECTURE.md).
var corePatterns = []string{"./model/...", "./bank/...", "./patchcore/...", "./internal/..."}

var (
	// release is what cross/build.sh ships for this machine's
	// architecture: cgo on (GoCV), default tags.
	release = build{"release", []string{"GOOS=linux", "CGO_ENABLED=1"}, nil, []string{"./..."}}
	// withTFLite adds the optional cgo backend over TensorFlow Lite's C
	// library (model/tflitec), the one cgo the core may use.
	withTFLite = build{"-tags tflite", []string{"GOOS=linux", "CGO_ENABLED=1"}, []string{"tflite"}, []string{"./..."}}
	// coreARM is the core in the arm64 and armhf release builds, where an
	// architecture's own files could bring in cgo.
	coreARM = []build{
		{"arm64", []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=1"}, nil, corePatterns},
		{"armhf", []string{"GOOS=linux", "GOARCH=arm", "GOARM=7", "CGO_ENABLED=1"}, nil, corePatterns},
	}
	// pureGo is the core as test-qemu builds it, for every target.
	pureGo = []build{
		{"CGO_ENABLED=0 GOARCH=amd64", []string{"GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0"}, nil, corePatterns},
		{"CGO_ENABLED=0 GOARCH=arm64", []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"}, nil, corePatterns},
		{"CGO_ENABLED=0 GOARCH=arm", []string{"GOOS=linux", "GOARCH=arm", "GOARM=7", "CGO_ENABLED=0"}, nil, corePatterns},
	}
	allBuilds = slices.Concat([]build{release, withTFLite}, coreARM, pureGo)
)

// listed holds every build's graph, listed once per test binary and all
// at once: each go list waits mostly on the file system.
var listed struct {
	once   sync.Once
	graphs map[string]*Graph
	errs   map[string]error
}

// load returns b's graph.
func load(t *testing.T, b build) *Graph {
	t.Helper()
	listed.once.Do(func() {
		root := testenv.ModuleRoot(t)
		graphs, errs := make([]*Graph, len(allBuilds)), make([]error, len(allBuilds))
		var wg sync.WaitGroup
		for i, b := range allBuilds {
			wg.Go(func() { graphs[i], errs[i] = List(root, b.env, b.tags, b.patterns...) })
		}
		wg.Wait()
		listed.graphs, listed.errs = map[string]*Graph{}, map[string]error{}
		for i, b := range allBuilds {
			listed.graphs[b.name], listed.errs[b.name] = graphs[i], errs[i]
		}
	})
	g, err := listed.graphs[b.name], listed.errs[b.name]
	if err != nil {
		t.Fatal(err)
	}
	if g == nil || g.Module == "" {
		t.Fatalf("%s: no package of the main module listed", b.name)
	}
	return g
}

// under reports whether the short import path p is dir or inside it.
func under(p string, dirs ...string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

func isCore(short string) bool { return under(short, "model", "bank", "patchcore", "internal") }

// rule is a constraint on the import graph: no package that from selects
// may reach (or, with direct, import) a package forbid gives a reason
// against, in any of the builds; with self, nor be one.
type rule struct {
	name   string
	from   func(short string) bool
	direct bool
	self   bool
	forbid func(g *Graph, p *Package) string
	builds []build
}

// inModule is forbid for packages of the main module under one of dirs.
func inModule(why string, dirs ...string) func(*Graph, *Package) string {
	return func(g *Graph, p *Package) string {
		if p.InMain() && under(g.Short(p.ImportPath), dirs...) {
			return why
		}
		return ""
	}
}

// thirdParty is forbid for packages whose import path starts with one of
// prefixes (module paths).
func thirdParty(why string, prefixes ...string) func(*Graph, *Package) string {
	return func(_ *Graph, p *Package) string {
		if under(p.ImportPath, prefixes...) {
			return why
		}
		return ""
	}
}

// either forbids what any of fs forbids.
func either(fs ...func(*Graph, *Package) string) func(*Graph, *Package) string {
	return func(g *Graph, p *Package) string {
		for _, f := range fs {
			if why := f(g, p); why != "" {
				return why
			}
		}
		return ""
	}
}

var (
	gocv  = thirdParty("GoCV", "gocv.io")
	mqtts = thirdParty("an MQTT library", "github.com/eclipse/paho.mqtt.golang", "github.com/mochi-mqtt")
	// usesCgo is a package of ours or of a dependency that compiles C in
	// this build. The standard library's cgo (net's resolver, os/user) is
	// left out: it has pure-Go twins that CGO_ENABLED=0 builds take, which
	// the pure-Go builds check.
	usesCgo = func(_ *Graph, p *Package) string {
		if !p.Standard && len(p.CgoFiles) > 0 {
			return "cgo: " + strings.Join(p.CgoFiles, " ")
		}
		return ""
	}
)

var rules = []rule{
	{
		name:   "the core is pure Go",
		from:   isCore,
		self:   true,
		forbid: either(gocv, mqtts, usesCgo),
		builds: slices.Concat([]build{release}, coreARM),
	},
	{
		name:   "the core has no GoCV and no MQTT, with the TensorFlow Lite backend too",
		from:   isCore,
		forbid: either(gocv, mqtts),
		builds: []build{withTFLite},
	},
	{
		// Direct imports: model reads .tflite files for the daemon, which
		// is the point (model.Load), so the format is in daemon's graph.
		name:   "the daemon loads models through model's API, not from file formats",
		from:   func(p string) bool { return under(p, "daemon") },
		direct: true,
		forbid: inModule("a file format", "model/tflite", "model/torchckpt", "internal/npy"),
		builds: []build{release, withTFLite},
	},
	{
		name: "patchcore does not need the checkpoint converter",
		from: func(p string) bool { return under(p, "patchcore") },
		forbid: either(inModule("the checkpoint converter", "model/resnet", "model/torchckpt"),
			thirdParty("the checkpoint converter's pickle reader", "github.com/nlpodyssey/gopickle")),
		builds: []build{release, withTFLite},
	},
	{
		name:   "image code does not use the GEMM kernels",
		from:   func(p string) bool { return under(p, "internal/rgb", "internal/heatmap", "internal/jpeg") },
		forbid: inModule("the GEMM kernels", "internal/qgemm"),
		builds: []build{release, withTFLite},
	},
	{
		name:   "only camera imports GoCV",
		from:   func(p string) bool { return !under(p, "camera") },
		direct: true,
		forbid: gocv,
		builds: []build{release, withTFLite},
	},
	{
		name:   "only mqtt imports paho and mochi",
		from:   func(p string) bool { return !under(p, "mqtt") },
		direct: true,
		forbid: mqtts,
		builds: []build{release, withTFLite},
	},
	{
		name:   "only commands import the daemon",
		from:   func(p string) bool { return !under(p, "cmd", "daemon") },
		direct: true,
		forbid: inModule("the daemon: only a command wires it in", "daemon"),
		builds: []build{release, withTFLite},
	},
	{
		name:   "nothing imports a command",
		from:   func(string) bool { return true },
		direct: true,
		forbid: inModule("a command", "cmd"),
		builds: []build{release, withTFLite},
	},
}

// check returns the rule's violations in all its builds, each with the
// builds it shows in.
func (r rule) check(t *testing.T) []string {
	var order []string
	in := map[string][]string{}
	for _, b := range r.builds {
		for _, m := range r.violations(load(t, b)) {
			if _, ok := in[m]; !ok {
				order = append(order, m)
			}
			in[m] = append(in[m], b.name)
		}
	}
	var out []string
	for _, m := range order {
		out = append(out, fmt.Sprintf("%s [%s]", m, strings.Join(in[m], ", ")))
	}
	return out
}

// violations returns the rule's violations in one graph.
func (r rule) violations(g *Graph) []string {
	var msgs []string
	for _, path := range g.Matched {
		p := g.Packages[path]
		if !p.InMain() || !r.from(g.Short(path)) {
			continue
		}
		if why := r.forbid(g, p); r.self && why != "" {
			msgs = append(msgs, fmt.Sprintf("%s itself uses what it must not (%s)", g.Short(path), why))
		}
		for _, reached := range g.Reach(path, r.direct, func(q *Package) string { return r.forbid(g, q) }) {
			msgs = append(msgs, g.Format(reached))
		}
	}
	return msgs
}

// TestImportRules checks docs/ARCHITECTURE.md's "Who may import whom" on the release
// build and on the build with the TensorFlow Lite backend.
func TestImportRules(t *testing.T) {
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			for _, v := range r.check(t) {
				t.Error(v)
			}
		})
	}
}

// TestCoreBuildsWithoutCgo lists the core with CGO_ENABLED=0 for every
// target: a package of ours that needs cgo has no files left there and
// fails to load (a dependency's cgo is the import rules' business: GoCV,
// for one, keeps a few pure-Go files and lists fine).
func TestCoreBuildsWithoutCgo(t *testing.T) {
	for _, b := range pureGo {
		t.Run(b.name, func(t *testing.T) {
			g := load(t, b)
			for _, path := range slices.Sorted(maps.Keys(g.Packages)) {
				if p := g.Packages[path]; p.Error != nil {
					t.Errorf("%s does not build with %s: %s", g.Short(path), b.name, p.Error.Err)
				}
			}
		})
	}
}

// TestEveryPackageHasADoc: every package of the module says what it is in
// a package comment, "Package name ..." (or "Command name ..." for a
// main package), as go doc and pkg.go.dev show it.
func TestEveryPackageHasADoc(t *testing.T) {
	g := load(t, release)
	for _, path := range g.Matched {
		p := g.Packages[path]
		if !p.InMain() {
			continue
		}
		name := p.Name
		if name == "" { // only test files: name it after its folder
			name = path[strings.LastIndex(path, "/")+1:]
		}
		want := "Package " + name + " "
		if p.Name == "main" {
			want = "Command " + path[strings.LastIndex(path, "/")+1:] + " "
		}
		switch {
		case p.Doc == "":
			t.Errorf("%s has no package doc comment (want one starting %q, in doc.go or the package's main file)", g.Short(path), want)
		case !strings.HasPrefix(p.Doc, want):
			t.Errorf("%s: package doc %q does not start with %q", g.Short(path), p.Doc, want)
		}
	}
}
