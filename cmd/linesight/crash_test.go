package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/testenv"
)

// TestImportSurvivesKill9: `bank import --activate` of a bundle carrying
// its backbone is killed with SIGKILL at 20 random moments of its run (the
// same store transactions a station runs for a pushed bundle: the model
// file, then the version, its serial, its audit entry and the activation
// in one transaction). After each kill the database opens, passes its full
// check, and either the old bank or the new one is active and loads.
func TestImportSurvivesKill9(t *testing.T) {
	if testenv.Race || testing.Short() {
		t.Skip("skipping the kill -9 runs under -race or -short")
	}
	mobilenet := sharedMobileNet(t)
	work := t.TempDir()
	bin := filepath.Join(work, "linesight")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	line := filepath.Join(work, "line")
	runOK(t, "sample-line", line, "--train", "8", "--test-good", "1", "--per-defect", "1")
	base, ws := filepath.Join(work, "base.db"), filepath.Join(work, "ws.db")
	for i, db := range []string{base, ws} {
		runOK(t, "bank", "build", "--model", mobilenet, "--images", filepath.Join(line, "train/good"), "--db", db, "--threads", "2", "--seed", string(rune('1'+i)))
	}
	bundle := filepath.Join(work, "new.bundle")
	runOK(t, "bank", "export", "--db", ws, "--out", bundle, "--with-model")
	baseData, _ := os.ReadFile(base)

	importInto := func(dir string) *exec.Cmd {
		db := filepath.Join(dir, "banks.db")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(db, baseData, 0o600)
		return exec.Command(bin, "bank", "import", "--db", db, "--activate", bundle)
	}
	// How long an import takes when left alone: the kills fall inside it.
	start := time.Now()
	if out, err := importInto(filepath.Join(work, "whole")).CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	whole := time.Since(start)

	rng := rand.New(rand.NewPCG(1, 2))
	outcomes := map[uint64]int{}
	for i := 0; i < 20; i++ {
		dir := filepath.Join(work, "kill", string(rune('a'+i)))
		cmd := importInto(dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Process start, reading and checking the bundle take the first
		// part of the run: the kills fall in its second part, where the
		// model file and the store are written.
		time.Sleep(whole*2/5 + time.Duration(rng.Int64N(int64(whole*3/5))))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		st, err := bank.OpenStore(filepath.Join(dir, "banks.db"), true)
		if err != nil {
			t.Fatalf("kill %d: the database does not open: %v", i, err)
		}
		if err := st.Check(); err != nil {
			t.Errorf("kill %d: %v", i, err)
		}
		active, err := st.ActiveVersion()
		if err != nil || (active != 1 && active != 2) {
			t.Errorf("kill %d: active version %d, %v; want 1 (old) or 2 (new)", i, active, err)
		}
		if _, err := st.Get(active); err != nil {
			t.Errorf("kill %d: the active bank %d does not load: %v", i, active, err)
		}
		st.Close()
		outcomes[active]++
	}
	t.Logf("import of a %s bundle (%v alone) killed at 20 random moments: old bank active %d times, new %d, database sound 20 of 20",
		sizeOf(bundle), whole.Round(time.Millisecond), outcomes[1], outcomes[2])
}

func sizeOf(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(fi.Size())/(1<<20))
}
