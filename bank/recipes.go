package bank

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// A station's product recipes (the daemon's recipes.list) name bank
// versions in its configuration. When a new bank is put in use while a
// recipe is (taught on the station, appended to by an operator, pushed,
// activated, rolled back to), the recipe follows it: the store keeps, per
// recipe name, the version the recipe follows now and the version the
// configuration named when it started following (Basis), so that a
// restart comes back with the bank the recipe last ran with, and an edit
// of the configuration (another Basis) takes precedence again.
var bucketRecipes = []byte("recipes")

// RecipeBank is the bank version a recipe follows (Version) in place of
// the one the configuration names (Basis).
type RecipeBank struct {
	Version uint64 `json:"version"`
	Basis   uint64 `json:"basis"`
}

// maxRecipeName bounds a stored recipe name (the configuration's names are
// short; a longer key is not one of ours).
const maxRecipeName = 256

func decodeRecipeBank(name, raw []byte) (RecipeBank, error) {
	var rb RecipeBank
	if len(name) == 0 || len(name) > maxRecipeName || !utf8.Valid(name) {
		return rb, fmt.Errorf("%w: recipe record under a key of %d bytes", ErrCorrupt, len(name))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rb); err != nil {
		return rb, fmt.Errorf("%w: recipe %q: %v", ErrCorrupt, name, err)
	}
	if _, err := dec.Token(); err != io.EOF || rb.Version == 0 || rb.Basis == 0 {
		return rb, fmt.Errorf("%w: recipe %q: record %.64q", ErrCorrupt, name, raw)
	}
	return rb, nil
}

// RecipeBanks returns the recipes that follow another bank than their
// configured one, by name. A record that does not decode is an error
// naming it; the others are returned beside it.
func (s *Store) RecipeBanks() (map[string]RecipeBank, error) {
	out := map[string]RecipeBank{}
	var bad error
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecipes)
		if b == nil {
			return nil // no recipe has followed a bank yet
		}
		return b.ForEach(func(k, v []byte) error {
			rb, err := decodeRecipeBank(k, v)
			if err != nil {
				bad = err
				return nil
			}
			out[string(k)] = rb
			return nil
		})
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return out, fmt.Errorf("bank: recipes of %s: %w", s.path, err)
	}
	return out, nil
}

// putRecipe records inside tx that recipe name follows rb.
func putRecipe(tx *bolt.Tx, name string, rb RecipeBank) error {
	if name == "" || len(name) > maxRecipeName || rb.Version == 0 || rb.Basis == 0 {
		return fmt.Errorf("recipe %q following version %d (configured %d): not a valid record", name, rb.Version, rb.Basis)
	}
	b, err := tx.CreateBucketIfNotExists(bucketRecipes)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(rb)
	if err != nil {
		return err
	}
	return b.Put([]byte(name), raw)
}
