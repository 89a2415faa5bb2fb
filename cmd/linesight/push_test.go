package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linesight/linesight/config"
	"github.com/linesight/linesight/daemon"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/mqtt"
)

// TestPushToServingStations: `linesight bank push` to two serving
// stations that trust one key, one on a broker limited to 128 KiB packets
// (mosquitto's max_packet_size), the other on a second mosquitto bridged to
// the first, as a cell broker chained to a plant broker. Unsigned, untrusted,
// wrong-model and replayed bundles are refused with the check named, and the station
// keeps serving its bank; a damaged file is refused before it is sent; a
// signed push with --activate reaches both, their status shows the new
// version, and results keep flowing during the transfer.
func TestPushToServingStations(t *testing.T) {
	if testenv.Race || testing.Short() {
		t.Skip("skipping station runs under -race or -short")
	}
	mobilenet := sharedMobileNet(t)
	plant := testenv.Mosquitto(t, "max_packet_size 131072")
	cell := testenv.Mosquitto(t, "connection plant", "address "+plant.Addr(), "topic linesight/# both 1", "cleansession true")
	work := t.TempDir()
	line := filepath.Join(work, "line")
	runOK(t, "sample-line", line, "--train", "8", "--test-good", "1", "--per-defect", "1")
	build := func(db string, seed int) {
		runOK(t, "bank", "build", "--model", mobilenet, "--images", filepath.Join(line, "train/good"), "--db", db, "--threads", "2", "--seed", fmt.Sprint(seed))
	}
	keys, other := filepath.Join(work, "keys"), filepath.Join(work, "other")
	runOK(t, "keys", "generate", "--out", keys)
	runOK(t, "keys", "generate", "--out", other)

	// Results per station, heard on the plant broker.
	var mu sync.Mutex
	results := map[string]int{}
	sub, err := mqtt.Subscribe(plant.URL(), "push-test-recorder", "linesight/+/result", nil, "", "", func(topic string, _ []byte, _ bool) {
		mu.Lock()
		results[strings.Split(topic, "/")[1]]++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	count := func(id string) int { mu.Lock(); defer mu.Unlock(); return results[id] }

	img := filepath.Join(line, "test/good/000.png")
	if _, err := os.Stat(img); err != nil {
		imgs, _ := filepath.Glob(filepath.Join(line, "test/good/*"))
		img = imgs[0]
	}
	// p1 looks at a defective part (its bank says FAIL), p2 at a good one.
	defects, _ := filepath.Glob(filepath.Join(line, "test/scratch/*"))
	if len(defects) == 0 {
		t.Fatal("the sample line has no scratch images")
	}
	for _, st := range []struct{ id, broker, img string }{{"p1", plant.URL(), defects[0]}, {"p2", cell.URL(), img}} {
		db := filepath.Join(work, st.id+".db")
		build(db, 1)
		cfg, err := config.Load("", []string{"station.id=" + st.id, "camera.source=" + st.img, "camera.max_fps=20",
			"model.path=" + mobilenet, "bank.db=" + db, "bank.trusted_keys=" + filepath.Join(keys, "signing.pub"),
			"mqtt.broker=" + st.broker, "mqtt.outbox.path=" + filepath.Join(work, st.id+".outbox"), fmt.Sprintf("http.listen=127.0.0.1:%d", testenv.FreePort(t)), "model.threads=1", "maps.policy=never"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- daemon.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("station %s: %v", st.id, err)
			}
		}()
	}
	version := func(id string) float64 {
		var out bytes.Buffer
		if err := run([]string{"cmd", "--broker", plant.URL(), "--timeout", "5s", id, "status"}, &out); err != nil {
			return -1
		}
		var r struct{ Result mqtt.Status }
		json.Unmarshal(out.Bytes(), &r)
		if r.Result.Bank == nil {
			return -1
		}
		return float64(r.Result.Bank.Version)
	}
	for _, id := range []string{"p1", "p2"} {
		for deadline := time.Now().Add(30 * time.Second); version(id) != 1; {
			if time.Now().After(deadline) {
				t.Fatalf("station %s never served bank version 1", id)
			}
		}
	}

	// The workstation's bank, exported in every way the stations must refuse.
	ws := filepath.Join(work, "ws.db")
	build(ws, 2)
	export := func(name string, args ...string) string {
		path := filepath.Join(work, name)
		runOK(t, append([]string{"bank", "export", "--db", ws, "--out", path}, args...)...)
		return path
	}
	// With the backbone inside: megabytes, in blocks under the packet limit.
	good := export("good.bundle", "--sign", filepath.Join(keys, "signing.key"), "--serial", "1000", "--with-model")
	older := export("older.bundle", "--sign", filepath.Join(keys, "signing.key"), "--serial", "999")
	unsigned := export("unsigned.bundle", "--serial", "1001")
	untrusted := export("untrusted.bundle", "--sign", filepath.Join(other, "signing.key"), "--serial", "1002")
	// A bank made with another backbone (the TF1 MobileNetV2, automatic
	// taps), pushed without it.
	otherModel := filepath.Join(work, "tf1.db")
	runOK(t, "bank", "build", "--model", testenv.SharedFile(t, "models/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite"), "--taps", "auto",
		"--images", filepath.Join(line, "train/good"), "--db", otherModel, "--threads", "2")
	wrongModel := filepath.Join(work, "wrong-model.bundle")
	runOK(t, "bank", "export", "--db", otherModel, "--out", wrongModel, "--sign", filepath.Join(keys, "signing.key"), "--serial", "1005")
	data, _ := os.ReadFile(good)
	data[len(data)/2] ^= 0x40
	damaged := filepath.Join(work, "damaged.bundle")
	os.WriteFile(damaged, data, 0o644)

	push := func(file, stations string, more ...string) ([]pushResult, error) {
		var out bytes.Buffer
		err := run(append([]string{"bank", "push", file, "--broker", plant.URL(), "--station", stations, "--activate", "--json",
			"--sign", filepath.Join(keys, "signing.key"), "--timeout", "60s", "--continue"}, more...), &out)
		var rs []pushResult
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var r pushResult
			if json.Unmarshal([]byte(l), &r) == nil {
				rs = append(rs, r)
			}
		}
		return rs, err
	}
	if _, err := push(damaged, "p1"); err == nil {
		t.Errorf("a damaged bundle was pushed")
	}
	for _, c := range []struct{ file, check string }{{unsigned, "unsigned"}, {untrusted, "untrusted"}, {wrongModel, "model"}} {
		rs, err := push(c.file, "p1")
		if err == nil || len(rs) != 1 || rs[0].Result != mqtt.StateRefused || rs[0].Check != c.check {
			t.Errorf("push of the %s bundle: %+v, %v; want refused by the %q check", c.check, rs, err, c.check)
		}
		if v := version("p1"); v != 1 {
			t.Errorf("after the %s push p1 serves version %v, want 1", c.check, v)
		}
	}

	before := [2]int{count("p1"), count("p2")}
	start := time.Now()
	rs, err := push(good, "p1,p2")
	took := time.Since(start)
	if err != nil || len(rs) != 2 {
		t.Fatalf("signed push to p1,p2: %+v, %v", rs, err)
	}
	for _, r := range rs {
		if r.Result != mqtt.StateDone || !r.Active {
			t.Errorf("station %s: %+v", r.Station, r)
		}
		if v := version(r.Station); v != float64(r.Version) || v < 2 {
			t.Errorf("station %s serves version %v after the push, the push said %d", r.Station, v, r.Version)
		}
	}
	during := [2]int{count("p1") - before[0], count("p2") - before[1]}
	if during[0] == 0 || during[1] == 0 {
		t.Errorf("no results while pushing (%v in %v): frames stopped", during, took)
	}
	t.Logf("pushed %d bytes to p1 (max_packet_size 131072) and p2 (bridged) in %v; results meanwhile %v", len(data), took.Round(time.Millisecond), during)

	// The same bank again with a lower serial: a replay or a downgrade.
	rs, err = push(older, "p1")
	if err == nil || len(rs) != 1 || rs[0].Check != "serial" {
		t.Errorf("push of an older serial: %+v, %v; want refused by the serial check", rs, err)
	}

	// Canary: the next 10 frames scored with both banks. A bank rebuilt
	// from the same good parts keeps p1's verdicts and is promoted; a bank
	// that learnt p1's defect as good flips them and is not.
	v := version("p1")
	same := filepath.Join(work, "same.db")
	build(same, 3)
	taught := filepath.Join(work, "taught")
	os.MkdirAll(taught, 0o755)
	goods, _ := filepath.Glob(filepath.Join(line, "train/good/*"))
	for i, f := range append(goods, defects[0], defects[0], defects[0]) {
		b, _ := os.ReadFile(f)
		os.WriteFile(filepath.Join(taught, fmt.Sprintf("%03d%s", i, filepath.Ext(f))), b, 0o644)
	}
	wrong := filepath.Join(work, "wrong.db")
	runOK(t, "bank", "build", "--model", mobilenet, "--images", taught, "--db", wrong, "--threads", "2")
	for _, c := range []struct {
		db      string
		serial  string
		promote bool
	}{{same, "1003", true}, {wrong, "1004", false}} {
		file := filepath.Join(work, "canary-"+c.serial+".bundle")
		runOK(t, "bank", "export", "--db", c.db, "--out", file, "--sign", filepath.Join(keys, "signing.key"), "--serial", c.serial)
		rs, err := push(file, "p1", "--canary", "10", "--max-flips", "0")
		if len(rs) != 1 || rs[0].Canary == nil {
			t.Fatalf("canary push: %+v, %v", rs, err)
		}
		r, rep := rs[0], rs[0].Canary
		t.Logf("canary (promote expected %v): %s, %d frames, %d flips, correlation %.3f", c.promote, r.Result, rep.Frames, rep.Flips, rep.Correlation)
		if rep.Frames != 10 {
			t.Errorf("canary scored %d frames, want 10", rep.Frames)
		}
		now := version("p1")
		// A promoted bank takes over between frames: the status names
		// the bank in use, which is the new one from the next frame on.
		for deadline := time.Now().Add(10 * time.Second); c.promote && now <= v && time.Now().Before(deadline); now = version("p1") {
			time.Sleep(100 * time.Millisecond)
		}
		if c.promote {
			if err != nil || r.Result != mqtt.StateDone || rep.Flips != 0 || now <= v {
				t.Errorf("the canary did not promote a bank that keeps the verdicts: %+v %+v, %v; serving %v (was %v)", r, rep, err, now, v)
			}
			v = now
		} else if err == nil || r.Check != "canary" || rep.Flips == 0 || now != v {
			t.Errorf("the canary promoted a bank that flips verdicts: %+v %+v, %v; serving %v (was %v)", r, rep, err, now, v)
		}
	}
}
