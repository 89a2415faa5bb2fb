package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/internal/sampleline"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

// relabelled draws a product change on a good part: a printed label on
// the belt beside the washer, which the old bank has never seen.
func relabelled(t *testing.T, src, dst string) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	im, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	img := image.NewRGBA(im.Bounds())
	draw.Draw(img, img.Bounds(), im, image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(6, 6, 58, 30), &image.Uniform{color.RGBA{235, 235, 225, 255}}, image.Point{}, draw.Src)
	for x := 10; x < 54; x += 6 { // a bar code
		draw.Draw(img, image.Rect(x, 10, x+2, 26), &image.Uniform{color.RGBA{20, 20, 20, 255}}, image.Point{}, draw.Src)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(out, img); err != nil {
		t.Fatal(err)
	}
	out.Close()
}

// TestTeachAStationFromNothing commissions a station over MQTT (against
// mosquitto): it starts without a bank and says needs-bank, is taught 20
// good parts from its own camera, inspects; two frames of a product
// change fail, are appended by seq, and the product change then passes
// while defects still fail; a restart keeps the evidence ring.
func TestTeachAStationFromNothing(t *testing.T) {
	heavy(t) // under -race, building the bank in 5 folds takes minutes
	dir := t.TempDir()
	f := &fixture{dir: dir, line: filepath.Join(dir, "line"), in: filepath.Join(dir, "in"), db: filepath.Join(dir, "state", "banks.db"),
		model: testenv.SharedFile(t, "models/mobilenet_v2/tf2_mobilenet_v2_1.0_224_ptq.tflite")}
	os.MkdirAll(f.in, 0o755)
	if err := sampleline.Write(f.line, sampleline.Counts{Train: 20, TestGood: 6, PerDefect: 2}, 11); err != nil {
		t.Fatal(err)
	}
	put := func(src string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(f.in, fmt.Sprintf("%04d.png", f.fed)), b, 0o644)
		f.fed++
		time.Sleep(40 * time.Millisecond)
	}
	mq := testenv.Mosquitto(t)
	rec := record(t, mq.URL())
	cfg := f.config(t, mq.URL(), "maps.policy=never", "evidence.frames=50")
	stop := run(t, cfg)

	lastStatus := func() mqtt.Status {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		var st mqtt.Status
		if ps := rec.msgs["linesight/t1/status"]; len(ps) > 0 {
			json.Unmarshal(ps[len(ps)-1], &st)
		}
		return st
	}
	rec.waitFor(t, "needs-bank status", 10*time.Second, func() bool { return lastStatus().State == mqtt.StateNeedsBank })
	if h, code := getHealth(cfg.HTTP.Listen); code != 503 || h["state"] != mqtt.StateNeedsBank || !strings.Contains(fmt.Sprint(h["error"]), "needs-bank") {
		t.Errorf("health without a bank: %d %v", code, h)
	}

	replies := func(name, id string) []mqtt.Reply {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		var out []mqtt.Reply
		for _, p := range rec.msgs["linesight/t1/cmd/"+name+"/reply"] {
			var r mqtt.Reply
			if json.Unmarshal(p, &r) == nil && r.ID == id {
				out = append(out, r)
			}
		}
		return out
	}
	asked := 0
	askStatus := func() mqtt.Status {
		t.Helper()
		asked++
		id := fmt.Sprintf("s%d", asked)
		if err := rec.sub.Publish("linesight/t1/cmd/status", 1, false, []byte(`{"id":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
		rec.waitFor(t, "a status reply", 10*time.Second, func() bool { return len(replies("status", id)) > 0 })
		var st mqtt.Status
		raw, _ := json.Marshal(replies("status", id)[0].Result)
		json.Unmarshal(raw, &st)
		return st
	}
	enrollState := func(r mqtt.Reply) mqtt.EnrollState {
		var st mqtt.EnrollState
		raw, _ := json.Marshal(r.Result)
		json.Unmarshal(raw, &st)
		return st
	}
	if err := rec.sub.Publish("linesight/t1/cmd/bank/enroll", 1, false, []byte(`{"id":"e1","count":20,"activate":true}`)); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the enroll command's first reply", 10*time.Second, func() bool { return len(replies("bank/enroll", "e1")) > 0 })
	if r := replies("bank/enroll", "e1")[0]; !r.OK || enrollState(r).State != mqtt.EnrollCapturing {
		t.Fatalf("enroll reply %+v", r)
	}
	train, _ := patchcore.ImageFiles(filepath.Join(f.line, "train/good"))
	for _, p := range train {
		put(p)
	}
	var done mqtt.EnrollState
	rec.waitFor(t, "the enrollment to end", 3*time.Minute, func() bool {
		rs := replies("bank/enroll", "e1")
		done = enrollState(rs[len(rs)-1])
		return done.State == mqtt.EnrollDone || done.State == mqtt.EnrollFailed
	})
	if done.State != mqtt.EnrollDone || done.Version != 1 || !done.Active || done.Captured != 20 || done.Threshold <= 0 {
		t.Fatalf("enrollment ended %+v", done)
	}
	var stages []string
	for _, r := range replies("bank/enroll", "e1") {
		if st := enrollState(r); st.State == mqtt.EnrollBuilding && st.Stage != "" && (len(stages) == 0 || stages[len(stages)-1] != st.Stage) {
			stages = append(stages, st.Stage)
		}
	}
	t.Logf("taught: version %d, threshold %.4f, expected false-reject rate %g, %d progress replies, build stages %v",
		done.Version, done.Threshold, done.ExpectedFRR, len(replies("bank/enroll", "e1")), stages)
	rec.waitFor(t, "online status with bank 1", 10*time.Second, func() bool {
		st := lastStatus()
		return st.State == mqtt.StateOnline && st.Bank != nil && st.Bank.Version == 1
	})
	if n := len(rec.results()); n != 0 {
		t.Errorf("%d results while the station had no bank", n)
	}

	// Inspect: good parts, defects and two parts of a product change.
	type sent struct{ kind, file string }
	var feed []sent
	goods, _ := patchcore.ImageFiles(filepath.Join(f.line, "test/good"))
	for _, g := range goods[:4] {
		feed = append(feed, sent{"good", g})
	}
	for _, d := range sampleline.Defects {
		ds, _ := patchcore.ImageFiles(filepath.Join(f.line, "test", d))
		for _, p := range ds {
			feed = append(feed, sent{d, p})
		}
	}
	variant := func(i int) string {
		p := filepath.Join(dir, fmt.Sprintf("variant-%d.png", i))
		relabelled(t, goods[i], p)
		return p
	}
	feed = append(feed, sent{"variant", variant(4)}, sent{"variant", variant(5)})
	inspect := func(batch []sent) []mqtt.Result {
		t.Helper()
		before := len(rec.results())
		for _, s := range batch {
			put(s.file)
		}
		rec.waitFor(t, fmt.Sprintf("%d results", len(batch)), 60*time.Second, func() bool { return len(rec.results()) >= before+len(batch) })
		return rec.results()[before:]
	}
	res := inspect(feed)
	var variantSeqs []uint64
	for i, r := range res {
		switch k := feed[i].kind; {
		case k == "variant":
			variantSeqs = append(variantSeqs, r.Seq)
			if r.Verdict != mqtt.Fail {
				t.Errorf("a product-change part passed the bank taught before it (score %.4f, threshold %.4f)", r.Score, r.Threshold)
			}
		case k == "good":
			if r.Verdict != mqtt.Pass {
				t.Logf("good part seq %d fails: score %.4f, threshold %.4f", r.Seq, r.Score, r.Threshold)
			}
		default:
			if r.Verdict != mqtt.Fail {
				t.Errorf("a %s passed: seq %d score %.4f threshold %.4f", k, r.Seq, r.Score, r.Threshold)
			}
		}
		t.Logf("seq %d %-8s %s score %.4f", r.Seq, feed[i].kind, r.Verdict, r.Score)
	}

	// The operator says the two product-change frames were good parts.
	rec.waitFor(t, "the evidence ring to hold them", 10*time.Second, func() bool {
		ev := askStatus().Evidence
		return ev != nil && ev.Newest >= variantSeqs[1]
	})
	body := fmt.Sprintf(`{"id":"a1","seqs":[%d,%d]}`, variantSeqs[0], variantSeqs[1])
	if err := rec.sub.Publish("linesight/t1/cmd/bank/append", 1, false, []byte(body)); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the append reply", 60*time.Second, func() bool { return len(replies("bank/append", "a1")) > 0 })
	ar := replies("bank/append", "a1")[0]
	var app mqtt.AppendReply
	raw, _ := json.Marshal(ar.Result)
	json.Unmarshal(raw, &app)
	if !ar.OK || app.Version != 2 || !app.Active || app.Added == 0 || app.From != 1 {
		t.Fatalf("append reply %+v (%+v)", ar, app)
	}
	t.Logf("appended seqs %v: %d patches added (%d vectors), scores %v -> %v, threshold %.4f -> %.4f",
		variantSeqs, app.Added, app.Vectors, app.Before, app.After, app.OldThreshold, app.Threshold)

	// The product change now passes; defects still fail.
	var again []sent
	for i := range 2 {
		again = append(again, sent{"variant", variant(i)})
	}
	for _, d := range sampleline.Defects {
		ds, _ := patchcore.ImageFiles(filepath.Join(f.line, "test", d))
		for _, p := range ds {
			again = append(again, sent{d, p})
		}
	}
	for i, r := range inspect(again) {
		t.Logf("after append: seq %d %-8s %s score %.4f threshold %.4f (bank %d)", r.Seq, again[i].kind, r.Verdict, r.Score, r.Threshold, r.BankVersion)
		if r.BankVersion != 2 {
			t.Errorf("seq %d scored by bank %d", r.Seq, r.BankVersion)
		}
		if want := map[bool]string{true: mqtt.Pass, false: mqtt.Fail}[again[i].kind == "variant"]; r.Verdict != want {
			t.Errorf("after append, a %s part: %s (score %.4f, threshold %.4f)", again[i].kind, r.Verdict, r.Score, r.Threshold)
		}
	}

	// A restart keeps the evidence ring (and the taught bank).
	var before *mqtt.EvidenceStatus
	rec.waitFor(t, "every result in the evidence ring", 10*time.Second, func() bool {
		before = askStatus().Evidence
		last := rec.results()[len(rec.results())-1]
		return before != nil && before.Newest == last.Seq
	})
	stop()
	rec.waitFor(t, "the offline status", 10*time.Second, func() bool { return lastStatus().State == mqtt.StateOffline })
	run(t, cfg)
	rec.waitFor(t, "online again with bank 2 and the same evidence", 15*time.Second, func() bool {
		st := lastStatus()
		if st.State == mqtt.StateOnline {
			st = askStatus()
		}
		return st.State == mqtt.StateOnline && st.Bank != nil && st.Bank.Version == 2 && st.Evidence != nil &&
			st.Evidence.Oldest == before.Oldest && st.Evidence.Newest == before.Newest && st.Evidence.Frames == before.Frames
	})
	t.Logf("evidence ring across the restart: %d frames (%d..%d), %.1f MiB", before.Frames, before.Oldest, before.Newest, float64(before.Bytes)/(1<<20))
}

// TestEnrollAndAppendCommands runs teach mode and append through the
// station's command handlers, without a broker (and so under -race too):
// the refusals that change nothing, an enrollment of 3 frames handed over
// as the pipeline would, and an append of evidence frames by seq.
func TestEnrollAndAppendCommands(t *testing.T) {
	f := newFixture(t)
	s := commandStation(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	s.teach.ctx = ctx
	t.Cleanup(func() { cancel(); s.teach.wg.Wait() })
	req := func(id, payload string) mqtt.Request {
		r := mqtt.Request{ID: id, Raw: json.RawMessage(payload)}
		return r
	}
	for _, bad := range []string{`{"count":1}`, `{"count":1001}`, `{"count":3,"timeout_s":-1}`, `{"count":3,"timeout_s":1e9}`, `{"count":3,"interval_ms":-5}`, `{"count":3,"extra":1}`, `{"count":"3"}`} {
		if _, err := s.command(mqtt.CmdBankEnroll, req("b", bad)); err == nil {
			t.Errorf("enroll %s accepted", bad)
		}
	}
	if s.teach.last != nil {
		t.Fatal("a refused enrollment started")
	}
	res, err := s.command(mqtt.CmdBankEnroll, req("e1", `{"count":3,"activate":true,"note":"taught in a test"}`))
	if err != nil {
		t.Fatal(err)
	}
	if st := res.(mqtt.EnrollState); st.State != mqtt.EnrollCapturing || st.Count != 3 || st.ID != "e1" {
		t.Errorf("first reply %+v", st)
	}
	if _, err := s.command(mqtt.CmdBankEnroll, req("e2", `{"count":3}`)); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("a second enrollment while one runs: %v", err)
	}
	img := f.image(t)
	for range 3 {
		s.offerEnroll(img)
		time.Sleep(50 * time.Millisecond) // the writer takes each before the next
	}
	deadline := time.Now().Add(5 * time.Minute)
	var st *mqtt.EnrollState
	// While it builds, it is still running: another enrollment is refused
	// (one was taken here, and the two removed each other's frames).
	for st = s.enrollState(); st.State == mqtt.EnrollCapturing && time.Now().Before(deadline); st = s.enrollState() {
		time.Sleep(5 * time.Millisecond)
	}
	if st.State == mqtt.EnrollBuilding {
		if _, err := s.command(mqtt.CmdBankEnroll, req("e3", `{"count":3}`)); err == nil || !strings.Contains(err.Error(), "still running (building)") {
			t.Errorf("a second enrollment while the first builds: %v", err)
		}
	} else {
		t.Logf("the build ended before it could be checked (%s)", st.State)
	}
	for {
		if st = s.enrollState(); st.State == mqtt.EnrollDone || st.State == mqtt.EnrollFailed || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.State != mqtt.EnrollDone || st.Captured != 3 || st.Version != 4 || !st.Active {
		t.Fatalf("enrollment ended %+v", st)
	}
	s.banks.swapIn()
	if v := s.banks.version(); v != 4 {
		t.Errorf("bank in use %d after enrolling version 4", v)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(f.db), "enroll-*")); len(left) != 0 {
		t.Errorf("the enrollment left %v", left)
	}

	// Append: refused without an evidence ring, for frames it does not
	// hold, and for a frame named twice; then taken.
	if _, err := s.command(mqtt.CmdBankAppend, req("a0", `{"seqs":[1]}`)); err == nil || !strings.Contains(err.Error(), "evidence.frames") {
		t.Errorf("append without an evidence ring: %v", err)
	}
	if s.evidence, err = openEvidence(t.TempDir(), 10, 1<<30, quiet); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(mqtt.Result{Seq: 7})
	s.evidence.add(7, img, raw)
	s.evidence.write(<-s.evidence.jobs)
	for _, bad := range []string{`{"seqs":[]}`, `{"seqs":[7,7]}`, `{"seqs":[8]}`, `{"seqs":[7],"activate":"yes"}`} {
		if _, err := s.command(mqtt.CmdBankAppend, req("a1", bad)); err == nil {
			t.Errorf("append %s accepted", bad)
		}
	}
	res, err = s.command(mqtt.CmdBankAppend, req("a2", `{"seqs":[7],"activate":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if ar := res.(mqtt.AppendReply); ar.Version != 5 || ar.Active || ar.From != 4 || len(ar.Before) != 1 || len(ar.After) != 1 {
		t.Errorf("append reply %+v", ar)
	}
	s.banks.swapIn()
	if v := s.banks.version(); v != 4 {
		t.Errorf("bank in use %d after appending without activating", v)
	}
}

// TestEnrollRoom: an enrollment whose frames would not fit beside the
// bank database, with room to spare for the outbox and the database, is
// refused before it starts (on a 300 MiB tmpfs: 2 frames of 1080p fit,
// 10 do not).
func TestEnrollRoom(t *testing.T) {
	dir := testenv.Tmpfs(t, "300m")
	if err := enrollRoom(dir, 2, 1920, 1080); err != nil {
		t.Errorf("2 frames on 300 MiB: %v", err)
	}
	if err := enrollRoom(dir, 10, 1920, 1080); err == nil || !strings.Contains(err.Error(), "MiB are free") {
		t.Errorf("10 frames of 1080p on 300 MiB: %v", err)
	}
}

// TestEnrollMemory: the build's features must fit in half the memory
// available: 1000 frames of a 28x28 grid of 1536 floats (about 10 GiB)
// do not fit in 4 GiB, 30 do; with the memory unknown nothing is refused.
func TestEnrollMemory(t *testing.T) {
	if err := enrollMemory(1000, 28*28*1536, 4<<30); err == nil || !strings.Contains(err.Error(), "teach fewer parts") {
		t.Errorf("1000 frames in 4 GiB: %v", err)
	}
	if err := enrollMemory(30, 28*28*1536, 4<<30); err != nil {
		t.Errorf("30 frames in 4 GiB: %v", err)
	}
	if err := enrollMemory(1000, 28*28*1536, 0); err != nil {
		t.Errorf("memory unknown: %v", err)
	}
	if memAvailable() == 0 {
		t.Error("MemAvailable not read from /proc/meminfo")
	}
}

// TestTeachChoosesGeometryForStrips: a station taught from nothing on a
// line of long strips (500x1250 frames) chooses its model input from the
// frames as bank build does (keep the aspect, short side at the model's
// 224: 224x560), not the model's square input, records why in the bank,
// and then inspects with that bank.
func TestTeachChoosesGeometryForStrips(t *testing.T) {
	heavy(t)
	dir := t.TempDir()
	f := &fixture{dir: dir, line: filepath.Join(dir, "line"), in: filepath.Join(dir, "in"), db: filepath.Join(dir, "state", "banks.db"),
		model: testenv.SharedFile(t, "models/mobilenet_v2/tf2_mobilenet_v2_1.0_224_ptq.tflite")}
	os.MkdirAll(f.in, 0o755)
	if err := sampleline.WriteKind(f.line, sampleline.KindStrip, sampleline.Counts{Train: 10, TestGood: 1, PerDefect: 1}, 7); err != nil {
		t.Fatal(err)
	}
	put := func(src string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(f.in, fmt.Sprintf("%04d.png", f.fed)), b, 0o644)
		f.fed++
		time.Sleep(40 * time.Millisecond)
	}
	mq := testenv.Mosquitto(t)
	rec := record(t, mq.URL())
	cfg := f.config(t, mq.URL(), "maps.policy=never")
	stop := run(t, cfg)
	defer stop()
	var last mqtt.EnrollState
	enrolled := func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		ps := rec.msgs["linesight/t1/cmd/bank/enroll/reply"]
		if len(ps) == 0 {
			return false
		}
		var r mqtt.Reply
		json.Unmarshal(ps[len(ps)-1], &r)
		if !r.OK {
			t.Fatalf("enroll refused: %s", ps[len(ps)-1])
		}
		raw, _ := json.Marshal(r.Result)
		json.Unmarshal(raw, &last)
		return last.State == mqtt.EnrollDone || last.State == mqtt.EnrollFailed
	}
	// The station says needs-bank before it takes commands that teach it.
	rec.waitFor(t, "needs-bank status", 10*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.msgs["linesight/t1/status"]) > 0
	})
	if err := rec.sub.Publish("linesight/t1/cmd/bank/enroll", 1, false, []byte(`{"id":"e1","count":10,"activate":true}`)); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the enroll command's first reply", 10*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.msgs["linesight/t1/cmd/bank/enroll/reply"]) > 0
	})
	// Teach mode takes the newest frame when it is ready for one (a frame
	// that comes while the last is still being written is skipped), so
	// the line keeps feeding good parts until it has its count.
	train, _ := patchcore.ImageFiles(filepath.Join(f.line, "train/good"))
	for i, end := 0, time.Now().Add(5*time.Minute); !enrolled(); i++ {
		if last.State == "" || last.State == mqtt.EnrollCapturing {
			put(train[i%len(train)])
			time.Sleep(100 * time.Millisecond)
		} else {
			time.Sleep(200 * time.Millisecond)
		}
		if time.Now().After(end) {
			t.Fatalf("the enrollment did not end within 5 minutes: %+v", last)
		}
	}
	if last.State != mqtt.EnrollDone || last.Version != 1 {
		t.Fatalf("enrollment ended %+v", last)
	}
	goods, _ := patchcore.ImageFiles(filepath.Join(f.line, "test/good"))
	put(goods[0])
	rec.waitFor(t, "a result with the taught bank", time.Minute, func() bool { return len(rec.results()) > 0 })
	stop()

	st, err := bank.OpenStore(f.db, true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	metas, err := st.List()
	if err != nil || len(metas) != 1 {
		t.Fatalf("banks after teaching: %d, %v", len(metas), err)
	}
	p := metas[0].Preprocess
	t.Logf("taught geometry: %dx%d %s: %s", p.Width, p.Height, p.Fit, p.Why)
	if p.Width != 224 || p.Height != 560 || p.Fit != patchcore.FitKeepAspect || !strings.Contains(p.Why, "teach mode") {
		t.Errorf("a station taught on 500x1250 strips stored input %dx%d fit %q why %q; want 224x560 keep-aspect chosen in teach mode", p.Width, p.Height, p.Fit, p.Why)
	}
}
