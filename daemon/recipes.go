package daemon

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/linesight/linesight/bank"
	"github.com/linesight/linesight/config"
	"github.com/linesight/linesight/mqtt"
	"github.com/linesight/linesight/patchcore"
)

// recipes are the station's product variants (recipes.list): each a bank
// version under a name and a number. Every recipe's detector is loaded at
// start and kept loaded, so that a switch is an activation record and a
// swap between frames, not a load: well under a second whatever the bank's
// size. A result names the recipe whose bank scored it (by bank version,
// which config.Validate keeps unique per recipe).
//
// A recipe follows the bank in use: when a bank that is no recipe's is put
// in use while a recipe is (teach mode, an operator's append, a push,
// `bank activate`, a rollback), that recipe takes it (follow), recorded in
// the bank database with an audit entry, so that selecting the recipe
// again, or a restart, comes back to the bank it last ran with rather than
// the configured one, until the configuration names another bank for it.
type recipes struct {
	s    *station
	list []config.Recipe // a copy of recipes.list; Bank is the version followed now

	mu sync.Mutex // serialises switches (taken before the banks' lock)

	// vmu guards each recipe's Bank, dets and errs. It is taken last,
	// after r.mu and the banks' lock, and nothing is locked under it: a
	// recipe follows a new bank from inside the banks' lock (follow).
	vmu   sync.Mutex
	dets  map[uint64]*patchcore.Detector
	errs  map[uint64]error  // why a recipe's bank is not loaded
	basis map[string]uint64 // each recipe's bank in the configuration
}

// errNoRecipes: recipe commands on a station without recipes.list.
var errNoRecipes = errors.New("this station has no recipes (recipes.list)")

// openRecipes loads every recipe's bank (the one in use is shared, not
// loaded twice) and, when the bank in use is none of the recipes', puts
// recipes.default (or the first) in use. A recipe whose bank does not load
// is reported and refused when selected; the others serve.
func openRecipes(s *station) *recipes {
	r := &recipes{s: s, list: slices.Clone(s.cfg.Recipes.List), dets: map[uint64]*patchcore.Detector{}, errs: map[uint64]error{},
		basis: map[string]uint64{}}
	if len(r.list) == 0 {
		return r
	}
	for _, rc := range r.list {
		r.basis[rc.Name] = rc.Bank
	}
	b := s.banks
	cur := b.current()
	prev := r.restoreFollowed()
	if cur != nil {
		r.adoptActive(cur.Bank().Meta.Version, prev)
	}
	for i := range r.list {
		rc := &r.list[i]
		if cur != nil && cur.Bank().Meta.Version == rc.Bank {
			r.dets[rc.Bank] = cur
			b.keep(cur)
			continue
		}
		b.mu.Lock()
		det, err := b.load(rc.Bank)
		if err != nil && rc.Bank != r.basis[rc.Name] && r.byVersion(r.basis[rc.Name]) == nil {
			s.log.Error("the bank a recipe followed does not load; it goes back to its configured bank", "recipe", rc.Name, "bank", rc.Bank, "err", err)
			rc.Bank = r.basis[rc.Name]
			det, err = b.load(rc.Bank)
		}
		b.mu.Unlock()
		if err != nil {
			s.log.Error("recipe's bank does not load; the recipe is refused when selected", "recipe", rc.Name, "bank", rc.Bank, "err", err)
			r.errs[rc.Bank] = err
			continue
		}
		r.dets[rc.Bank] = det
		b.keep(det)
	}
	if cur == nil || r.byVersion(cur.Bank().Meta.Version) == nil {
		name := s.cfg.Recipes.Default
		if name == "" {
			name = r.list[0].Name
		}
		if _, err := r.switchTo(r.byName(name), "config"); err != nil {
			s.log.Error("the default recipe could not be put in use", "recipe", name, "err", err)
		}
	}
	b.mu.Lock()
	b.onOffer = r.follow
	b.mu.Unlock()
	return r
}

// restoreFollowed puts each recipe back on the bank it followed when the
// station stopped (bank.Store.RecipeBanks), unless the configuration names
// another bank for it since (the record's basis), or the version is
// another recipe's, configured or followed. It returns the version that was
// active before the active one (0 when none), for adoptActive.
func (r *recipes) restoreFollowed() (prev uint64) {
	st, err := bank.OpenStore(r.s.banks.db, true)
	if err != nil {
		return 0 // no database yet, or one the banks report
	}
	followed, err := st.RecipeBanks()
	if err != nil {
		r.s.log.Error("recipes' followed banks partly unreadable; those recipes use the configured bank", "err", err)
	}
	if hist, err := st.History(); err == nil && len(hist) > 0 {
		prev = hist[len(hist)-1].Version
	}
	st.Close()
	taken := map[uint64]bool{}
	for _, rc := range r.list {
		taken[rc.Bank] = true
	}
	for i := range r.list {
		rc := &r.list[i]
		fb, ok := followed[rc.Name]
		switch {
		case !ok || fb.Version == rc.Bank:
		case fb.Basis != rc.Bank:
			r.s.log.Info("recipe: the configuration names another bank since it followed one; the configured bank is used", "recipe", rc.Name,
				"bank", rc.Bank, "followed", fb.Version, "followed_from", fb.Basis)
		case taken[fb.Version]:
			r.s.log.Warn("recipe: the bank it followed is another recipe's; the configured bank is used", "recipe", rc.Name,
				"bank", rc.Bank, "followed", fb.Version)
		default:
			r.s.log.Info("recipe follows the bank it last ran with", "recipe", rc.Name, "bank", fb.Version, "configured", rc.Bank)
			rc.Bank = fb.Version
			taken[fb.Version] = true
		}
	}
	return prev
}

// adoptActive is the start's follow: when the bank active in the database
// (v) is none of the recipes', either it is a recipe's configured bank
// (activated while the station was stopped: that recipe goes back to it),
// or it was put in use while a recipe was in use (prev, the version active
// before it, is that recipe's: the station stopped before recording the
// follow, or the activation was made with the station stopped), and that
// recipe follows it. Either is recorded as a follow would be. Otherwise
// nothing changes here and the default recipe is put in use.
func (r *recipes) adoptActive(v, prev uint64) {
	if r.byVersion(v) != nil {
		return
	}
	rc, why := r.configured(v), "the bank active at start is its configured one"
	if rc == nil {
		if rc = r.byVersion(prev); rc == nil || prev == 0 {
			return
		}
		why = "the bank active at start was put in use while the recipe was"
	}
	from := rc.Bank
	rc.Bank = v
	r.recordFollow(rc.Name, rc.Number, from, v, "the bank in use at start ("+why+")")
}

// recordFollow records in the bank database, with a "recipe" audit entry
// by "station" (published once the station is connected), that recipe
// name follows version to in place of from. what says which bank it is.
// A failure is logged: the recipe follows it all the same, until a restart.
func (r *recipes) recordFollow(name string, number int, from, to uint64, what string) {
	basis := r.basis[name]
	e := bank.AuditEntry{Time: time.Now(), Action: "recipe", Who: "station", Version: to, Result: bank.AuditOK,
		Detail: fmt.Sprintf("recipe %s (number %d) follows %s: version %d -> %d (configured %d)", name, number, what, from, to, basis)}
	err := r.s.banks.write(func(st *bank.Store) error {
		_, err := st.Apply(bank.Change{Recipe: name, RecipeBank: bank.RecipeBank{Version: to, Basis: basis}, Audit: &e})
		return err
	})
	if err != nil {
		r.s.log.Error("recipe follows a new bank, but recording it failed; after a restart it starts on its configured bank", "recipe", name, "bank", to, "err", err)
		return
	}
	if r.s.client != nil {
		r.s.publishAudit(e)
	}
	r.s.log.Info("recipe follows a new bank", "recipe", name, "from", from, "to", to, "what", what)
}

// configured is the recipe whose configured bank is version v.
func (r *recipes) configured(v uint64) *config.Recipe {
	for i := range r.list {
		if r.basis[r.list[i].Name] == v {
			return &r.list[i]
		}
	}
	return nil
}

// follow is the banks' hook (banks.onOffer, called with their lock held)
// when det is offered to replace prev: if prev is a recipe's bank and det
// is no recipe's, that recipe takes det's version, is recorded as
// following it (in the bank database, with a "recipe" audit entry by
// "station"), and keeps det loaded; its former bank is let go.
func (r *recipes) follow(prev, det *patchcore.Detector) {
	if prev == nil || det == nil || prev == det {
		return
	}
	pv, nv := prev.Bank().Meta.Version, det.Bank().Meta.Version
	r.vmu.Lock()
	rc := r.byVersionLocked(pv)
	if pv == nv || rc == nil || r.byVersionLocked(nv) != nil {
		r.vmu.Unlock()
		return
	}
	rc.Bank = nv
	if old := r.dets[pv]; old != nil && old != det {
		// The recipe's former detector: closed when it leaves use, or
		// now when it is not in use nor waiting (the bank in use was
		// another copy of its version, loaded by an activation).
		b := r.s.banks
		b.kept.Delete(old)
		if old != b.cur.Load() && old != b.next {
			closeDetector(old)
		}
	}
	delete(r.dets, pv)
	delete(r.errs, pv)
	r.dets[nv] = det
	name, number := rc.Name, rc.Number
	r.vmu.Unlock()
	r.s.banks.keep(det)
	r.recordFollow(name, number, pv, nv, "the bank put in use")
}

func (r *recipes) byName(name string) *config.Recipe {
	for i := range r.list {
		if r.list[i].Name == name {
			return &r.list[i]
		}
	}
	return nil
}

func (r *recipes) byNumber(n int) *config.Recipe {
	for i := range r.list {
		if r.list[i].Number == n {
			return &r.list[i]
		}
	}
	return nil
}

func (r *recipes) byVersion(v uint64) *config.Recipe {
	r.vmu.Lock()
	defer r.vmu.Unlock()
	return r.byVersionLocked(v)
}

func (r *recipes) byVersionLocked(v uint64) *config.Recipe {
	for i := range r.list {
		if r.list[i].Bank == v {
			return &r.list[i]
		}
	}
	return nil
}

// of names the recipe of bank version v ("" and 0 when none).
func (r *recipes) of(v uint64) (string, int) {
	if r == nil {
		return "", 0
	}
	if rc := r.byVersion(v); rc != nil {
		return rc.Name, rc.Number
	}
	return "", 0
}

// active is the recipe of the bank in use or about to be (nil when none).
func (r *recipes) active() *config.Recipe {
	if r == nil {
		return nil
	}
	if det := r.s.banks.pending(); det != nil {
		return r.byVersion(det.Bank().Meta.Version)
	}
	return nil
}

// switchTo puts rc's bank in use: the activation is recorded with its
// audit entry in one transaction of the bank store (so a restart and
// `linesight bank` agree), then its loaded detector waits for the next
// frame. who is recorded.
func (r *recipes) switchTo(rc *config.Recipe, who string) (mqtt.RecipeReply, error) {
	if rc == nil {
		return mqtt.RecipeReply{}, errors.New("no such recipe")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	// A recipe follows banks only from inside the banks' lock, which
	// this switch holds from here to its offer, so v stays its version.
	b := r.s.banks
	b.mu.Lock()
	r.vmu.Lock()
	v, det, loadErr := rc.Bank, r.dets[rc.Bank], r.errs[rc.Bank]
	r.vmu.Unlock()
	if det == nil {
		b.mu.Unlock()
		return mqtt.RecipeReply{}, fmt.Errorf("recipe %q: its bank version %d is not loaded: %v", rc.Name, v, loadErr)
	}
	reply := mqtt.RecipeReply{Recipe: rc.Name, Number: rc.Number, Version: v}
	if b.pendingVersion() == v {
		b.mu.Unlock()
		reply.SwitchMs = ms(time.Since(start))
		return reply, nil
	}
	e := bank.AuditEntry{Time: time.Now(), Action: "recipe", Who: who, Version: v, Result: bank.AuditOK,
		Detail: fmt.Sprintf("recipe %s (number %d)", rc.Name, rc.Number)}
	err := b.write(func(st *bank.Store) error {
		_, err := st.Apply(bank.Change{Activate: true, Version: v, Audit: &e})
		return err
	})
	if err == nil {
		det.SetThreshold(b.override) // the operator's threshold stays in force, as over any bank
		b.offer(det)
	}
	b.mu.Unlock()
	if err != nil {
		return mqtt.RecipeReply{}, fmt.Errorf("recipe %q: %w", rc.Name, err)
	}
	if r.s.client != nil { // nil while Run starts: the default recipe's entry is in the log only
		r.s.publishAudit(e)
	}
	reply.Changed, reply.SwitchMs = true, ms(time.Since(start))
	r.s.log.Info("recipe selected; its bank takes over at the next frame", "recipe", rc.Name, "number", rc.Number, "bank", v, "who", who, "switch_ms", reply.SwitchMs)
	return reply, nil
}

// list answers recipe/list.
func (r *recipes) listing() mqtt.RecipeList {
	out := mqtt.RecipeList{Recipes: []mqtt.RecipeInfo{}, PLCSelect: r.s.cfg.Recipes.PLCSelect}
	act := r.active()
	r.vmu.Lock()
	defer r.vmu.Unlock()
	for _, rc := range r.list {
		ri := mqtt.RecipeInfo{Name: rc.Name, Number: rc.Number, Version: rc.Bank, Loaded: r.dets[rc.Bank] != nil, Active: act != nil && act.Name == rc.Name}
		if err := r.errs[rc.Bank]; err != nil {
			ri.Error = err.Error()
		}
		out.Recipes = append(out.Recipes, ri)
	}
	return out
}

// cmdRecipeSelect is recipe/select: state-changing (authorized, audited as
// a command, and the switch itself as "recipe").
func (s *station) cmdRecipeSelect(c call) (any, error) {
	if s.recipes == nil || len(s.recipes.list) == 0 {
		return nil, errNoRecipes
	}
	var p mqtt.RecipeRequest
	if err := strictDecode(c.body, &p); err != nil || (p.Name == "") == (p.Number == 0) {
		return nil, errors.New(`recipe/select: want {"name": "..."} or {"number": N}`)
	}
	rc := s.recipes.byName(p.Name)
	if p.Number != 0 {
		rc = s.recipes.byNumber(p.Number)
	}
	if rc == nil {
		return nil, fmt.Errorf("recipe/select: no recipe %s (recipe/list names them)", strings.TrimSpace(p.Name+" "+numberOrEmpty(p.Number)))
	}
	res, err := s.recipes.switchTo(rc, c.who)
	if err == nil {
		s.recipeChanged()
	}
	return res, err
}

func numberOrEmpty(n int) string {
	if n == 0 {
		return ""
	}
	return "number " + strconv.Itoa(n)
}

func (s *station) cmdRecipeList(call) (any, error) {
	if s.recipes == nil || len(s.recipes.list) == 0 {
		return nil, errNoRecipes
	}
	return s.recipes.listing(), nil
}

// selectByPLC is a recipe number from the PLC without a signature
// (plc/recipe, the Sparkplug "Recipe/Number" write), taken only with
// recipes.plc_select; each one, taken or refused, is audited.
func (s *station) selectByPLC(number int, via string) error {
	who := "plc:" + via
	var err error
	switch {
	case !s.cfg.Recipes.PLCSelect:
		err = errors.New("selection by number without a signature is off (recipes.plc_select: false); use the signed recipe/select command")
	case s.recipes == nil || s.recipes.byNumber(number) == nil:
		err = fmt.Errorf("no recipe number %d", number)
	}
	if err == nil {
		var res mqtt.RecipeReply
		if res, err = s.recipes.switchTo(s.recipes.byNumber(number), who); err == nil {
			if !res.Changed {
				return nil // already in use: nothing changed, nothing to audit
			}
			s.recipeChanged()
			return nil
		}
	}
	s.audit(bank.AuditEntry{Action: "recipe", Who: who, Result: bank.AuditRefused, Reason: err.Error(), Detail: fmt.Sprintf("number %d", number)})
	return err
}

// recipeChanged tells the PLC and the SCADA host which recipe is in use.
func (s *station) recipeChanged() { s.scada.send(scadaEvent{kind: evRecipe}) }

// keep marks det as a recipe's: the banks do not close it when it leaves
// use (it may come back at the next switch).
func (b *banks) keep(det *patchcore.Detector) { b.kept.Store(det, true) }

// release closes det unless a recipe keeps it loaded.
func (b *banks) release(det *patchcore.Detector) {
	if _, ok := b.kept.Load(det); !ok {
		closeDetector(det)
	}
}

// closeDetector closes a detector that has left use for good (a variable
// so that tests can see which are closed, and when).
var closeDetector = func(det *patchcore.Detector) { det.Close() }

// closeKept closes the recipes' detectors not closed yet (at stop, after
// the pipeline): done holds those already closed.
func (b *banks) closeKept(done map[*patchcore.Detector]bool) {
	b.kept.Range(func(k, _ any) bool {
		if det := k.(*patchcore.Detector); !done[det] {
			closeDetector(det)
			done[det] = true
		}
		return true
	})
}
