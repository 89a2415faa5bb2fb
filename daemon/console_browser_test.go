package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/config"
	"github.com/linesight/linesight/internal/testenv"
	"github.com/linesight/linesight/mqtt"
)

// chromiumPath is Debian's headless-capable Chromium.
const chromiumPath = "/usr/bin/chromium"

// browser starts a headless Chromium at 1366x768 (a line PC's screen) and
// collects what its pages write to the console. It skips the test when
// Chromium is not installed.
func browser(t *testing.T) (context.Context, func() []chromedp.ConsoleMessage) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("skipping the console's browser tests: %s not found (apt install chromium)", chromiumPath)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath), chromedp.NoSandbox,
		chromedp.WindowSize(1366, 768), chromedp.UserDataDir(t.TempDir()))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 768)); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	var mu sync.Mutex
	var msgs []chromedp.ConsoleMessage
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			mu.Lock()
			msgs = append(msgs, m)
			mu.Unlock()
		}
	}()
	return ctx, func() []chromedp.ConsoleMessage {
		mu.Lock()
		defer mu.Unlock()
		var bad []chromedp.ConsoleMessage
		for _, m := range msgs {
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
				bad = append(bad, m)
			}
		}
		return bad
	}
}

// screenshots is where the console's screenshots go: $LINESIGHT_SCREENSHOTS
// when set (kept), else the test's temporary folder.
func screenshots(t *testing.T) string {
	if d := os.Getenv("LINESIGHT_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func shoot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func do2(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		// What the page told its user, if anything.
		msg, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(document.body.dataset)`))
		t.Fatalf("%s: %v (the page says %q)", what, err, msg)
	}
}

// dialogOpen waits for the confirmation dialog to be open (the page opens
// it after the click that asked) and its buttons to stay where they are
// for two looks in a row, so that the next click lands on a button.
func dialogOpen() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		prev := ""
		for {
			cur, err := chromedp.Evaluate[string](`(() => { const d = document.querySelector("#confirm"), r = document.querySelector("#confirm-yes").getBoundingClientRect();
				return d.open && r.width > 0 ? JSON.stringify(r) : ""; })()`)(ctx, t)
			if err != nil {
				return err
			}
			if cur != "" && cur == prev {
				return nil
			}
			prev = cur
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

func activeBank(t *testing.T, db string) uint64 {
	t.Helper()
	st, err := bank.OpenStore(db, true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v, err := st.ActiveVersion()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestConsoleInChromium drives the console in headless Chromium on a
// station bound beyond loopback (0.0.0.0) with a users file: the login is
// required; the pages load without console errors (CSP violations are
// errors there too); a result shows within a second of its publication;
// the threshold preview counts equal those computed here from the
// results received over MQTT; activate and rollback ask first and do
// nothing when cancelled; a POST without the CSRF token is refused. It
// saves a screenshot of each page ($LINESIGHT_SCREENSHOTS keeps them).
func TestConsoleInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("skipping the console's browser tests: %s not found (apt install chromium)", chromiumPath)
	}
	f := newFixture(t)
	shots := screenshots(t)
	users := filepath.Join(f.dir, "console-users")
	os.WriteFile(users, []byte("anna operator "+tokenHash("anna-token-123")+"\n"), 0o640)
	mq := testenv.Mosquitto(t)
	rec := record(t, mq.URL())
	port := testenv.FreePort(t)
	cfg := f.config(t, mq.URL(), fmt.Sprintf("http.listen=0.0.0.0:%d", port), "http.console_users_file="+users)
	// Product recipes (issue 20): the live view names the one in use.
	cfg.Recipes.List = []config.Recipe{{Name: "bottle-500ml", Number: 1, Bank: 1}, {Name: "bottle-330ml", Number: 2, Bank: 2}}
	run(t, cfg)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	f.feed(t, 1, 0)
	waitHealthy(t, cfg.HTTP.Listen)

	ctx, problems := browser(t)

	// Bound beyond loopback: every page sends to the login.
	do2(t, ctx, "open the console", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != base+"/login?next=%2F" {
		t.Fatalf("the console without a login went to %q, want the login page", loc)
	}
	shoot(t, ctx, shots, "console-login")
	do2(t, ctx, "log in", chromedp.SendKeys(chromedp.CSS(`input[name=name]`), "anna"), chromedp.SendKeys(chromedp.CSS(`input[name=token]`), "anna-token-123"),
		chromedp.Submit(chromedp.CSS(`input[name=token]`)), chromedp.WaitVisible(chromedp.CSS(`body[data-page=live]`)))
	do2(t, ctx, "the event stream", chromedp.Poll[chromedp.Void](`document.querySelector("#stream").textContent === "live"`, chromedp.WithPollingTimeout(10*time.Second)))

	// A result within a second: from the moment the station published it
	// (capture time + total latency, in its result) to the page showing it.
	before := len(rec.results())
	f.feed(t, 1, 0)
	rec.waitFor(t, "the next result", 30*time.Second, func() bool { return len(rec.results()) > before })
	res := rec.results()[before]
	shown, err := chromedp.Run(ctx, chromedp.Poll[string](fmt.Sprintf(`document.body.dataset.seq === "%d" && document.body.dataset.shownAt`, res.Seq),
		chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		t.Fatalf("result %d never shown: %v", res.Seq, err)
	}
	shownAt, _ := strconv.ParseInt(shown, 10, 64)
	captured, _ := time.Parse(time.RFC3339Nano, res.Time)
	published := captured.Add(time.Duration(res.Latency.Total * float64(time.Millisecond)))
	delay := time.UnixMilli(shownAt).Sub(published)
	t.Logf("part %d: captured -> shown %v (inspection %.0f ms), published -> shown %v", res.Seq, time.UnixMilli(shownAt).Sub(captured), res.Latency.Total, delay)
	if delay > time.Second {
		t.Errorf("result %d shown %v after it was published, want within a second", res.Seq, delay)
	}
	if rc := eval[string](t, ctx, `document.querySelector("#recipe").textContent`); rc != "bottle-500ml (#1)" || res.Recipe != "bottle-500ml" {
		t.Errorf("the live view shows recipe %q, the result says %q; want bottle-500ml (#1)", rc, res.Recipe)
	}
	verdict := eval[string](t, ctx, `document.querySelector("#verdict").textContent`)
	if verdict != res.Verdict {
		t.Errorf("the verdict shown is %q, the result says %q", verdict, res.Verdict)
	}
	// Readable at a distance: large, and its letters not the colour of its box.
	look := eval[[]string](t, ctx, `(() => { const s = getComputedStyle(document.querySelector("#verdict")); return [s.color, s.backgroundColor, s.fontSize]; })()`)
	if px, _ := strconv.ParseFloat(strings.TrimSuffix(look[2], "px"), 64); look[0] == look[1] || px < 64 {
		t.Errorf("the verdict: colour %s on %s, %s high", look[0], look[1], look[2])
	}
	do2(t, ctx, "the frame with its map", chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector("#frame").dataset.seq === "%d"`, res.Seq),
		chromedp.WithPollingTimeout(10*time.Second)))

	// More parts, good and defective, for the trends and the gallery.
	f.feed(t, 8, 150*time.Millisecond)
	rec.waitFor(t, "10 results", 60*time.Second, func() bool { return len(rec.results()) >= 10 })
	results := rec.results()
	last := results[len(results)-1]
	do2(t, ctx, "the last part shown", chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.body.dataset.seq === "%d" && document.querySelector("#frame").dataset.seq === "%d"`, last.Seq, last.Seq),
		chromedp.WithPollingTimeout(20*time.Second)))
	shoot(t, ctx, shots, "console-live")

	// The threshold preview: the counts of the page against the results.
	// The recorder saw every result from seq 1 on, so the last n it holds
	// are the station's last n.
	for i, r := range results {
		if r.Seq != uint64(i+1) {
			t.Fatalf("results out of order or missing: %d at %d", r.Seq, i)
		}
	}
	n := len(results) - 1 // not all: the count must follow n
	var passed, failed []float64
	for _, r := range results[len(results)-n:] {
		if r.Verdict == mqtt.Fail {
			failed = append(failed, r.Score)
		} else {
			passed = append(passed, r.Score)
		}
	}
	if len(passed) < 2 || len(failed) < 2 {
		t.Fatalf("the fixture gave %d passed and %d failed parts; the preview needs both", len(passed), len(failed))
	}
	slices.Sort(passed)
	slices.Sort(failed)
	// Between the failed scores some failed parts would pass; between the
	// passed ones some passed parts would fail.
	do2(t, ctx, "the threshold page", chromedp.Navigate(base+"/threshold"), chromedp.WaitVisible(chromedp.CSS(`#th-value`)))
	for _, th := range []float64{(failed[0] + failed[1]) / 2, (passed[len(passed)-2] + passed[len(passed)-1]) / 2} {
		var wantToFail, wantToPass int
		for _, r := range results[len(results)-n:] {
			failed, would := r.Verdict == mqtt.Fail, r.Score > th
			if would && !failed {
				wantToFail++
			}
			if failed && !would {
				wantToPass++
			}
		}
		if wantToFail+wantToPass == 0 {
			t.Fatalf("at %v nothing would flip: not a test", th)
		}
		thText := strconv.FormatFloat(th, 'g', -1, 64)
		do2(t, ctx, "move the threshold",
			chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const n = document.querySelector("#th-n"); n.value = "%d"; const v = document.querySelector("#th-value"); v.value = "%s"; v.dispatchEvent(new Event("input")); })()`, n, thText)),
			chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector(".threshold").dataset.previewT === "%s" && document.querySelector(".threshold").dataset.previewN === "%d"`, thText, n),
				chromedp.WithPollingTimeout(10*time.Second)))
		got := eval[[]string](t, ctx, `["#pv-tofail", "#pv-topass", "#pv-n"].map((s) => document.querySelector(s).textContent)`)
		want := []string{strconv.Itoa(wantToFail), strconv.Itoa(wantToPass), strconv.Itoa(n)}
		t.Logf("threshold preview at %.4g over the last %d parts: page (to fail, to pass, n) %v, computed %v", th, n, got, want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("threshold preview at %s: page says to-fail, to-pass, n = %v, computed %v", thText, got, want)
		}
	}
	shoot(t, ctx, shots, "console-threshold")
	// Apply the last one (asked first), then go back to the bank's.
	th := eval[float64](t, ctx, `parseFloat(document.querySelector("#th-value").value)`)
	do2(t, ctx, "apply the threshold", chromedp.Click(chromedp.CSS(`#th-apply`)), dialogOpen(), chromedp.Click(chromedp.CSS(`#confirm-yes`)),
		chromedp.Poll[chromedp.Void](`document.body.dataset.said && document.body.dataset.said.startsWith("Threshold now")`, chromedp.WithPollingTimeout(10*time.Second)))
	type thState struct {
		Threshold float64 `json:"threshold"`
		Override  bool    `json:"override"`
	}
	state := func() thState {
		return eval[thState](t, ctx, `fetch("/api/state").then((r) => r.json())`)
	}
	if st := state(); !st.Override || st.Threshold != th {
		t.Errorf("after applying %v: %+v", th, st)
	}
	do2(t, ctx, "back to the bank's threshold", chromedp.Click(chromedp.CSS(`#th-reset`)), dialogOpen(), chromedp.Click(chromedp.CSS(`#confirm-yes`)),
		chromedp.Poll[chromedp.Void](`document.body.dataset.said && document.body.dataset.said.startsWith("Threshold now the bank's")`, chromedp.WithPollingTimeout(10*time.Second)))
	if st := state(); st.Override || st.Threshold != results[0].Threshold {
		t.Errorf("after going back to the bank's threshold %v: %+v", results[0].Threshold, st)
	}

	// Activate version 2: the page asks; Cancel changes nothing.
	db := cfg.Bank.DB
	do2(t, ctx, "the banks page", chromedp.Navigate(base+"/banks"), chromedp.WaitVisible(chromedp.CSS(`button.activate[data-version="2"]`)))
	shoot(t, ctx, shots, "console-banks")
	do2(t, ctx, "activate, then cancel", chromedp.Click(chromedp.CSS(`button.activate[data-version="2"]`)), dialogOpen(),
		chromedp.Click(chromedp.CSS(`#confirm-no`)), chromedp.WaitNotVisible(chromedp.CSS(`#confirm`)))
	if v := activeBank(t, db); v != 1 {
		t.Fatalf("after a cancelled activation the active bank is %d", v)
	}
	do2(t, ctx, "activate, then confirm", chromedp.Click(chromedp.CSS(`button.activate[data-version="2"]`)), dialogOpen())
	shoot(t, ctx, shots, "console-confirm")
	do2(t, ctx, "confirm", chromedp.Click(chromedp.CSS(`#confirm-yes`)),
		chromedp.Poll[chromedp.Void](`document.querySelector("tr.active#bank-2")`, chromedp.WithPollingTimeout(20*time.Second)))
	if v := activeBank(t, db); v != 2 {
		t.Fatalf("after a confirmed activation the active bank is %d, want 2", v)
	}
	do2(t, ctx, "roll back", chromedp.WaitVisible(chromedp.CSS(`#rollback`)), chromedp.Click(chromedp.CSS(`#rollback`)), dialogOpen(),
		chromedp.Click(chromedp.CSS(`#confirm-yes`)),
		chromedp.Poll[chromedp.Void](`document.querySelector("tr.active#bank-1")`, chromedp.WithPollingTimeout(20*time.Second)))
	if v := activeBank(t, db); v != 1 {
		t.Fatalf("after a confirmed rollback the active bank is %d, want 1", v)
	}
	var who []string
	for _, e := range auditLog(t, db) {
		if e.Who == "console:anna" {
			who = append(who, e.Result+" "+e.Detail)
		}
	}
	if len(who) != 4 || !strings.HasPrefix(who[0], "ok threshold {\"set\":") || who[1] != `ok threshold {"set":null,"reset":true}` ||
		!strings.HasPrefix(who[2], "ok bank/activate") || !strings.HasPrefix(who[3], "ok bank/rollback") {
		t.Errorf("audit log entries by console:anna: %q", who)
	}

	// The other pages, then the console errors so far (none allowed).
	for _, p := range []struct{ path, shot, wait string }{
		{"/trends", "console-trends", `#hist canvas`},
		{"/failures", "console-failures", `main`},
		{"/health", "console-health", `main`},
	} {
		do2(t, ctx, p.path, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.wait)))
		if p.path == "/failures" {
			if seqs, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".tile")].map((a) => a.getAttribute("href"))`)); len(seqs) > 0 {
				do2(t, ctx, "the gallery's pictures", chromedp.Poll[chromedp.Void](`[...document.querySelectorAll(".tile img")].every((i) => i.complete && i.naturalWidth > 0)`, chromedp.WithPollingTimeout(10*time.Second)))
				shoot(t, ctx, shots, p.shot)
				do2(t, ctx, "one failure", chromedp.Navigate(base+seqs[0]), chromedp.Poll[chromedp.Void](`document.querySelector("img.full").complete && document.querySelector("img.full").naturalWidth > 0`, chromedp.WithPollingTimeout(10*time.Second)))
				shoot(t, ctx, shots, "console-failure")
				continue
			}
			t.Log("no failed part in the evidence ring: no gallery picture")
		}
		shoot(t, ctx, shots, p.shot)
	}
	// On a tablet, portrait: the verdict above the frame, still large.
	do2(t, ctx, "tablet", chromedp.EmulateViewport(800, 1280, chromedp.EmulatePortrait), chromedp.Navigate(base+"/"),
		chromedp.Poll[chromedp.Void](`document.querySelector("#frame").dataset.seq`, chromedp.WithPollingTimeout(10*time.Second)))
	if h := eval[float64](t, ctx, `document.querySelector("#verdict").getBoundingClientRect().height`); h < 80 {
		t.Errorf("on a tablet the verdict is %v px high", h)
	}
	shoot(t, ctx, shots, "console-live-tablet")
	for _, p := range []string{"/", "/banks", "/trends", "/health"} {
		do2(t, ctx, "tablet "+p, chromedp.Navigate(base+p), chromedp.WaitVisible(chromedp.CSS(`main`)))
		if wide := eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth`); wide {
			t.Errorf("on a tablet %s is wider than the screen", p)
		}
	}
	shoot(t, ctx, shots, "console-health-tablet")
	do2(t, ctx, "back to the line PC", chromedp.EmulateViewport(1366, 768))
	if bad := problems(); len(bad) > 0 {
		for _, m := range bad {
			t.Errorf("console %s: %s (%s %s)", m.Type, m.Text, m.Source, m.URL)
		}
	}

	// A POST without the CSRF token, from the logged-in page: refused,
	// nothing changes.
	status := eval[int](t, ctx, `fetch("/api/bank/activate", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({version: 2, confirmed: true})}).then((r) => r.status)`)
	if status != http.StatusForbidden {
		t.Errorf("a POST without the CSRF token answered %d, want 403", status)
	}
	if v := activeBank(t, db); v != 1 {
		t.Errorf("after a refused POST the active bank is %d", v)
	}
	// And from outside the browser, without a session at all.
	resp, err := http.Post(base+"/api/bank/rollback", "application/json", strings.NewReader(`{"confirmed": true}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a POST without a login answered %d %s", resp.StatusCode, body)
	}
	var refused []string
	for _, e := range auditLog(t, db) {
		if e.Who == "console:anna" && e.Result == bank.AuditRefused {
			refused = append(refused, e.Reason)
		}
	}
	if len(refused) != 1 || !strings.HasPrefix(refused[0], "csrf") {
		t.Errorf("refusals audited: %q", refused)
	}
	// Mark a failure as a good part: bank append makes a new version from
	// the active one (1), puts it in use and records who asked.
	var failSeq uint64
	for _, r := range results {
		if r.Verdict == mqtt.Fail {
			failSeq = r.Seq
		}
	}
	do2(t, ctx, "mark as good", chromedp.Navigate(fmt.Sprintf("%s/failures/%d", base, failSeq)), chromedp.WaitVisible(chromedp.CSS(`#mark-good`)),
		chromedp.Click(chromedp.CSS(`#mark-good`)), dialogOpen(), chromedp.Click(chromedp.CSS(`#confirm-yes`)),
		chromedp.Poll[chromedp.Void](`document.querySelector("#append-result").textContent`, chromedp.WithPollingTimeout(60*time.Second)))
	said := eval[string](t, ctx, `document.querySelector("#append-result").textContent`)
	v := activeBank(t, db)
	appended := false
	for _, e := range auditLog(t, db) {
		appended = appended || (e.Action == "append" && e.Who == "console:anna" && e.Version == v && strings.Contains(e.Detail, fmt.Sprintf("frames [%d]", failSeq)))
	}
	t.Logf("marked part %d good: %q", failSeq, said)
	if v != 4 || !appended || !strings.HasPrefix(said, "Bank version 4 made from 1") {
		t.Errorf("after marking part %d good: active bank %d, appended by console:anna %v, page %q", failSeq, v, appended, said)
	}

	// Teach mode from the banks page: 2 parts, progress on the page, a new
	// version built on the station and put in use.
	do2(t, ctx, "teach mode", chromedp.Navigate(base+"/banks"), chromedp.WaitVisible(chromedp.CSS(`#enroll input[name=count]`)),
		chromedp.SetValue(chromedp.CSS(`#enroll input[name=count]`), "2"), chromedp.SetValue(chromedp.CSS(`#enroll input[name=note]`), "taught in the console test"),
		chromedp.Click(chromedp.CSS(`#enroll button[type=submit]`)), dialogOpen(), chromedp.Click(chromedp.CSS(`#confirm-yes`)),
		chromedp.Poll[chromedp.Void](`document.querySelector("#enroll-state").textContent.startsWith("capturing")`, chromedp.WithPollingTimeout(10*time.Second)))
	f.feed(t, 2, 300*time.Millisecond)
	do2(t, ctx, "teach mode done", chromedp.Poll[chromedp.Void](`document.querySelector("#enroll-state").textContent.startsWith("done") && document.querySelector("tr.active#bank-5")`,
		chromedp.WithPollingTimeout(60*time.Second)))
	if v := activeBank(t, db); v != 5 {
		t.Errorf("after teach mode the active bank is %d, want 5", v)
	}
	shoot(t, ctx, shots, "console-banks-taught")

	raw, _ := json.Marshal(results[len(results)-1])
	t.Logf("screenshots in %s; last result %s", shots, raw)
}
