package bank

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestRecipeBanksRecorded: a recipe's followed bank is recorded with the
// change that puts it in use and its audit entry, in one transaction; a
// version that is not stored is refused with nothing recorded; a damaged
// record is an error naming it, the good ones still returned.
func TestRecipeBanksRecorded(t *testing.T) {
	st, err := OpenStore(filepath.Join(t.TempDir(), "b.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if m, err := st.RecipeBanks(); err != nil || len(m) != 0 {
		t.Fatalf("a new store: %v %v", m, err)
	}
	b := randomBank(t, 1, 4, 8)
	v1, _ := st.PutActive(b)
	v2, err := st.Apply(Change{Put: randomBank(t, 2, 4, 8), Activate: true, Recipe: "bottle-1l",
		RecipeBank: RecipeBank{Version: 2, Basis: v1}, Audit: &AuditEntry{Action: "append", Who: "t", Result: AuditOK}})
	if err != nil || v2 != 2 {
		t.Fatalf("apply: %d %v", v2, err)
	}
	m, err := st.RecipeBanks()
	if err != nil || m["bottle-1l"] != (RecipeBank{Version: 2, Basis: 1}) || len(m) != 1 {
		t.Fatalf("recipes %v %v", m, err)
	}
	if _, err := st.Apply(Change{Recipe: "bottle-1l", RecipeBank: RecipeBank{Version: 9, Basis: 1}, Audit: &AuditEntry{Action: "recipe"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a version not stored: %v", err)
	}
	if log, _ := st.AuditLog(0); len(log) != 1 {
		t.Fatalf("the refused change left %d audit entries, want 1", len(log))
	}
	if m, _ := st.RecipeBanks(); m["bottle-1l"].Version != 2 {
		t.Fatalf("the refused change moved the recipe: %v", m)
	}
	for _, raw := range []string{`{"version":1,"basis":1}]`, `{"version":1,"basis":1} {}`, `{"version":1}`} {
		if _, err := decodeRecipeBank([]byte("r"), []byte(raw)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("record %s: %v", raw, err)
		}
	}
	st.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecipes).Put([]byte("bad"), []byte(`{"version":0,"basis":1}`))
	})
	m, err = st.RecipeBanks()
	if !errors.Is(err, ErrCorrupt) || m["bottle-1l"].Version != 2 {
		t.Fatalf("a damaged record: %v %v", m, err)
	}
	if err := st.Check(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `recipe "bad"`) {
		t.Fatalf("bank check on a damaged recipe record: %v", err)
	}
}
