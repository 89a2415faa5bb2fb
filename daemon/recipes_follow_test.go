package daemon

import (
	"testing"

	"github.com/linesight/linesight/bank"
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
