package daemon

import (
	"testing"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/patchcore"
)

// TestRecipeFollowsTheBankPutInUse: a bank that is no recipe's, put in use
// while a recipe is (here by activation, as teach mode, an append, a push
// or `bank activate` do), becomes that recipe's: results and recipe/list
// name the recipe with the new version, a switch away and back returns to
// it, the change is audited as "recipe" by "station", and a restart on the
// same database and configuration comes back with it. A configuration that
// names another bank since (the record's basis) takes precedence again.
func TestRecipeFollowsTheBankPutInUse(t *testing.T) {
	f := newFixture(t)
	s := scadaStation(t, f) // bottle-a on version 1 (in use), bottle-b on 2
	if rc := s.recipes.active(); rc == nil || rc.Name != "bottle-a" {
		t.Fatalf("at start: recipe %+v", rc)
	}
	st, err := bank.OpenStore(f.db, false)
	if err != nil {
		t.Fatal(err)
	}
	b1, err := st.Get(1)
	if err != nil {
		t.Fatal(err)
	}
	v, err := st.Put(b1) // a re-taught bank for bottle-a (version 4: 3 is the fixture's foreign one)
	st.Close()
	if err != nil || v != 4 {
		t.Fatalf("put: %d %v", v, err)
	}
	if _, err := s.banks.activate(v); err != nil {
		t.Fatal(err)
	}
	s.banks.swapIn()
	if rc := s.recipes.active(); rc == nil || rc.Name != "bottle-a" || rc.Bank != 4 {
		t.Fatalf("after the new bank: the recipe in use is %+v, want bottle-a on version 4", rc)
	}
	if name, _ := s.recipes.of(4); name != "bottle-a" {
		t.Errorf("results of version 4 name recipe %q", name)
	}
	l := s.recipes.listing()
	if l.Recipes[0].Version != 4 || !l.Recipes[0].Loaded || !l.Recipes[0].Active || l.Recipes[1].Version != 2 {
		t.Errorf("recipe/list: %+v", l.Recipes)
	}
	if e := auditTail(t, f, 1)[0]; e.Action != "recipe" || e.Who != "station" || e.Version != 4 || e.Result != bank.AuditOK {
		t.Errorf("the follow was audited as %+v", e)
	}
	for _, name := range []string{"bottle-b", "bottle-a"} {
		if _, err := s.recipes.switchTo(s.recipes.byName(name), "test"); err != nil {
			t.Fatal(err)
		}
		s.banks.swapIn()
	}
	if got := s.banks.version(); got != 4 {
		t.Fatalf("switched away and back to bottle-a: version %d in use, want 4", got)
	}

	// A restart: the recipe comes back on the bank it followed.
	s2 := scadaStation(t, f)
	if rc := s2.recipes.byName("bottle-a"); rc.Bank != 4 {
		t.Errorf("after a restart bottle-a is on version %d, want 4", rc.Bank)
	}
	if rc := s2.recipes.active(); rc == nil || rc.Name != "bottle-a" {
		t.Errorf("after a restart the recipe in use is %+v", rc)
	}

	// The configuration names another bank for bottle-a since it followed
	// one (as if recipes.list had said 9 then): the configured bank wins.
	st, _ = bank.OpenStore(f.db, false)
	if _, err := st.Apply(bank.Change{Recipe: "bottle-a", RecipeBank: bank.RecipeBank{Version: 4, Basis: 9}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	s3 := scadaStation(t, f)
	if rc := s3.recipes.byName("bottle-a"); rc.Bank != 1 {
		t.Errorf("with the configuration changed since, bottle-a is on version %d, want its configured 1", rc.Bank)
	}
}

// putCopy stores another copy of version from in f's database and returns
// its version.
func putCopy(t *testing.T, f *fixture, from uint64) uint64 {
	t.Helper()
	st, err := bank.OpenStore(f.db, false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := st.Get(from)
	if err != nil {
		t.Fatal(err)
	}
	v, err := st.Put(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRecipeFollowClosesDetectorsOnce: following never closes the
// detector in use (a recipe selected away and back before the next frame
// leaves it both in use and waiting), and a recipe's former detector that
// is not in use (the bank in use was another copy of its version, loaded
// by an activation) is closed at once rather than leaked; at stop every
// detector has been closed exactly once.
func TestRecipeFollowClosesDetectorsOnce(t *testing.T) {
	f := newFixture(t)
	closed := map[*patchcore.Detector]int{}
	var inUseClosed []uint64
	var s *station
	was := closeDetector
	closeDetector = func(det *patchcore.Detector) {
		closed[det]++
		if s != nil && det == s.banks.current() {
			inUseClosed = append(inUseClosed, det.Bank().Meta.Version)
		}
		det.Close()
	}
	t.Cleanup(func() { closeDetector = was })
	s = scadaStation(t, f) // bottle-a on 1 in use, bottle-b on 2
	seen := map[*patchcore.Detector]bool{}
	note := func() {
		seen[s.banks.current()] = true
		if s.banks.next != nil {
			seen[s.banks.next] = true
		}
		s.banks.kept.Range(func(k, _ any) bool { seen[k.(*patchcore.Detector)] = true; return true })
	}
	note()
	// Away to bottle-b and back before a frame, then a new bank.
	for _, name := range []string{"bottle-b", "bottle-a"} {
		if _, err := s.recipes.switchTo(s.recipes.byName(name), "test"); err != nil {
			t.Fatal(err)
		}
	}
	note()
	v4 := putCopy(t, f, 1)
	if _, err := s.banks.activate(v4); err != nil {
		t.Fatal(err)
	}
	note()
	if len(inUseClosed) > 0 {
		t.Fatalf("following closed the detector in use (version %v)", inUseClosed)
	}
	s.banks.swapIn()
	note()
	if rc := s.recipes.active(); rc == nil || rc.Name != "bottle-a" || rc.Bank != v4 {
		t.Fatalf("recipe in use %+v, want bottle-a on %d", rc, v4)
	}
	// bottle-b in use; bottle-a's version activated as a fresh copy of its
	// bank (not the recipe's kept detector); then a new bank follows.
	if _, err := s.recipes.switchTo(s.recipes.byName("bottle-b"), "test"); err != nil {
		t.Fatal(err)
	}
	s.banks.swapIn()
	if _, err := s.banks.activate(v4); err != nil {
		t.Fatal(err)
	}
	s.banks.swapIn()
	note()
	v5 := putCopy(t, f, 1)
	if _, err := s.banks.activate(v5); err != nil {
		t.Fatal(err)
	}
	s.banks.swapIn()
	note()
	if len(inUseClosed) > 0 {
		t.Fatalf("following closed the detector in use (version %v)", inUseClosed)
	}
	s.banks.close()
	for det := range seen {
		if closed[det] != 1 {
			t.Errorf("detector of version %d closed %d times, want once", det.Bank().Meta.Version, closed[det])
		}
	}
}

// TestRecipeAdoptsTheBankActiveAtStart: a bank activated while the station
// was stopped is taken at start as a running station would have: a
// recipe's configured bank puts that recipe back on it; a new bank
// activated after a recipe's bank (or whose follow was not recorded before
// a crash) is followed by that recipe; neither falls back to the default
// recipe.
func TestRecipeAdoptsTheBankActiveAtStart(t *testing.T) {
	f := newFixture(t)
	activate := func(v uint64) {
		t.Helper()
		st, err := bank.OpenStore(f.db, false)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.Activate(v); err != nil {
			t.Fatal(err)
		}
	}
	// Stopped with bottle-b (version 2) in use; a new bank activated then.
	activate(2)
	v4 := putCopy(t, f, 2)
	activate(v4)
	s := scadaStation(t, f)
	if rc := s.recipes.active(); rc == nil || rc.Name != "bottle-b" || rc.Bank != v4 {
		t.Fatalf("a bank activated after bottle-b's while stopped: recipe in use %+v, want bottle-b on %d", rc, v4)
	}
	if e := auditTail(t, f, 1)[0]; e.Action != "recipe" || e.Who != "station" || e.Version != v4 {
		t.Errorf("adopted as %+v", e)
	}
	s.banks.close()
	// Stopped again; bottle-b's configured bank (2) activated by hand.
	activate(2)
	s = scadaStation(t, f)
	if rc := s.recipes.active(); rc == nil || rc.Name != "bottle-b" || rc.Bank != 2 {
		t.Fatalf("bottle-b's configured bank activated while stopped: recipe in use %+v, want bottle-b on 2", rc)
	}
}
