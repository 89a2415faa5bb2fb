package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Package is what the go command says about one package: the fields the
// rules read, from `go list -json`.
type Package struct {
	ImportPath string
	Name       string
	Doc        string // the first sentence of the package comment
	Standard   bool   // part of the Go distribution
	DepOnly    bool   // listed as a dependency, not matched by the patterns
	Imports    []string
	CgoFiles   []string // files that import "C" in this build configuration
	Module     *struct {
		Path string
		Main bool
	}
	Error      *struct{ Err string }
	DepsErrors []*struct{ Err string }
}

// InMain reports whether p belongs to the main module (the repository's
// own code, not a dependency).
func (p *Package) InMain() bool { return p.Module != nil && p.Module.Main }

// Graph is the import graph of one build configuration: the packages the
// patterns matched and everything they import, directly or not.
type Graph struct {
	Module   string              // the main module's path
	Packages map[string]*Package // by import path
	Matched  []string            // the packages the patterns matched, in go list's order
	Config   string              // the build configuration, for messages
}

// List runs `go list -e -deps -json` on patterns in dir, with env added to
// the environment (CGO_ENABLED, GOARCH...) and the build tags tags, and
// returns the graph. Packages that fail to load are in the graph with their
// Error; List fails only when the go command does.
func List(dir string, env, tags []string, patterns ...string) (*Graph, error) {
	goCmd, err := goCommand()
	if err != nil {
		return nil, err
	}
	args := []string{"list", "-e", "-deps", "-json"}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	args = append(args, patterns...)
	cmd := exec.Command(goCmd, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	config := strings.TrimSpace(strings.Join(env, " ") + " go " + strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %v\n%s", config, err, stderr.Bytes())
	}
	g := &Graph{Packages: map[string]*Package{}, Config: config}
	dec := json.NewDecoder(&stdout)
	for {
		p := new(Package)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s: decoding its output: %v", config, err)
		}
		g.Packages[p.ImportPath] = p
		if !p.DepOnly {
			g.Matched = append(g.Matched, p.ImportPath)
		}
		if p.InMain() {
			g.Module = p.Module.Path
		}
	}
	return g, nil
}

// goCommand finds the go command that runs the tests: on PATH, or in the
// GOROOT the test binary was built with.
func goCommand() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if root := runtime.GOROOT(); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("the go command is neither on PATH nor in GOROOT")
}

// Short is path without the main module's prefix: "daemon" for
// "github.com/linesight/linesight/daemon".
func (g *Graph) Short(path string) string {
	if g.Module != "" && strings.HasPrefix(path, g.Module+"/") {
		return path[len(g.Module)+1:]
	}
	return path
}

// Reached is a forbidden package found from another one.
type Reached struct {
	Forbidden string   // the package that must not be there
	Reason    string   // why, as the rule's forbid function said
	Chain     []string // the imports from the start to Forbidden, both included
}

// Reach walks the imports of from, breadth first, and returns every
// package it reaches for which forbid returns a reason (non-empty), each
// with the shortest import chain that brings it in. The walk does not go
// past a forbidden package: what that one imports is its own problem, and
// a single import is reported once, not with all it drags along. With
// direct set, only from's own imports are looked at.
func (g *Graph) Reach(from string, direct bool, forbid func(*Package) string) []Reached {
	parent := map[string]string{from: ""}
	queue := []string{from}
	var found []Reached
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		p := g.Packages[cur]
		if p == nil {
			continue
		}
		for _, imp := range p.Imports {
			if _, seen := parent[imp]; seen {
				continue
			}
			parent[imp] = cur
			q := g.Packages[imp]
			if q == nil {
				continue // "C", or a package that failed to load
			}
			if why := forbid(q); why != "" {
				found = append(found, Reached{Forbidden: imp, Reason: why, Chain: chain(parent, imp)})
				continue
			}
			if !direct {
				queue = append(queue, imp)
			}
		}
	}
	return found
}

func chain(parent map[string]string, to string) []string {
	var c []string
	for p := to; p != ""; p = parent[p] {
		c = append(c, p)
	}
	for i, j := 0, len(c)-1; i < j; i, j = i+1, j-1 {
		c[i], c[j] = c[j], c[i]
	}
	return c
}

// Format writes r as a rule's failure, the chain with the main module's
// prefix left out: "daemon depends on model/torchckpt (a file format):
// daemon -> patchcore -> model/resnet -> model/torchckpt".
func (g *Graph) Format(r Reached) string {
	short := make([]string, len(r.Chain))
	for i, p := range r.Chain {
		short[i] = g.Short(p)
	}
	verb := "depends on"
	if len(r.Chain) == 2 {
		verb = "imports"
	}
	return fmt.Sprintf("%s %s %s (%s): %s", short[0], verb, short[len(short)-1], r.Reason, strings.Join(short, " -> "))
}
