package reliability

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	gocmp "github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// The model-based tests: random schedules against a plain reference model. See runModel.

func TestModelMemstore(t *testing.T) {
	setChecks(t, 100, 1)
	runModel(t, func() target { return newMemTarget() })
}

func TestModelMiniredis(t *testing.T) {
	setChecks(t, 15, 5) // the slowest: a miniredis per case, pumps that poll
	runModel(t, func() target { return newMiniTarget(t) })
}

func TestModelRedis(t *testing.T) {
	client := redistest.Client(t)
	setChecks(t, 15, 1)
	runModel(t, func() target { return newRealTarget(client) })
}

func TestModelCluster(t *testing.T) {
	client := redistest.Cluster(t)
	setChecks(t, 15, 2)
	runModel(t, func() target { return newRealTarget(client) })
}

// setChecks makes rapid.Check run def cases in this test, or, when EPHEMERAL_RELIABILITY_CASES
// is set, that number divided by div (slow backends run fewer). A -rapid.checks flag on the
// command line wins.
func setChecks(t *testing.T, def, div int) {
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "rapid.checks" })
	if explicit {
		return
	}
	n := def
	if os.Getenv(envCases) != "" {
		n = max(1, envInt(t, envCases, def)/div)
	}
	f := flag.Lookup("rapid.checks")
	old := f.Value.String()
	if err := f.Value.Set(strconv.Itoa(n)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Value.Set(old) })
}

// Keys and tenants of the model: few, so that writes collide. MaxEntries is below the number
// of keys, so that ErrCapacity happens.
var (
	modelKeys    = []string{"a", "b", "c", "d/1", "d/2"}
	modelTenants = []string{"room-1", "r{o}o:m%2"}
	modelValues  = []string{"", "x", "y", "zz-9"}
	fakeTTLs     = []time.Duration{2 * time.Second, 5 * time.Second, 20 * time.Second, time.Minute}
)

const (
	modelMaxEntries = 4
	// smallMaxEvents makes readers with old cursors overflow. A step makes at most 12 events
	// per tenant, and the recorders catch up after every step, so they never overflow.
	smallMaxEvents = 16
	// maxAdvance bounds the clock moves of a case below the event retention and the key
	// expiry of an idle tenant, so that neither drops history the recorders rely on.
	maxAdvance = 4 * time.Minute
	waitFor    = 30 * time.Second
)

// modelStats are the figures of one test, logged at its end.
type modelStats struct {
	cases, ops, events, readerEvents, overflows, mirrors, snapshots atomic.Int64
}

// runModel runs random cases against fresh targets. Each case checks that:
//
//   - the versions of a tenant are contiguous from 1, each write that returned success has
//     exactly one event with its version (deletes are told by their unique reasons), no
//     other event exists except the expiries that the model's clock makes due, and every
//     result and event is what the model says, applied in version order (concurrent writers
//     make the backend's order the truth: the model replays it and checks each step);
//   - in one-writer steps, also every rejected or no-op call is what the model says;
//   - a snapshot equals the model at its cursor; a Get equals the model; a snapshot taken
//     while keys expire holds none of the due keys, reconciled or not;
//   - every reader (started fresh, after a snapshot cursor or after an old cursor) receives
//     exactly the tenant's events after its cursor that match its prefix, in version order,
//     none twice, none missing, or an overflow that skips only events that are gone;
//   - every mirror equals the model once the events have arrived.
func runModel(t *testing.T, newTarget func() target) {
	var stats modelStats
	rapid.Check(t, func(rt *rapid.T) {
		c := newModelCase(rt, newTarget(), &stats)
		defer c.close()
		rt.Repeat(map[string]func(*rapid.T){
			"writes":      c.writes,
			"more writes": c.writes, // twice as likely as the other steps
			"advance":     c.advance,
			"snapshot":    c.snapshot,
			"get":         c.get,
			"reader":      c.reader,
			"mirror":      c.mirror,
		})
		c.finish(rt)
		stats.cases.Add(1)
	})
	t.Logf("%d cases, %d calls, %d events checked against the model, %d reader events checked (%d overflows), %d snapshots, %d mirrors; divergences: 0",
		stats.cases.Load(), stats.ops.Load(), stats.events.Load(), stats.readerEvents.Load(), stats.overflows.Load(), stats.snapshots.Load(), stats.mirrors.Load())
}

// modelEntry is one live entry of the model.
type modelEntry struct {
	value                     string
	version                   uint64
	created, updated, expires time.Time
	// seen are the expiries a mirror may hold: the one of the last event, and those set by the
	// quiet touches since (a relist reads them).
	seen []time.Time
}

// tenantModel is the model of one tenant, and its recorder: a reader started before the
// tenant's first event, whose events are the tenant's history.
type tenantModel struct {
	name    string
	rec     *stream
	epoch   string
	version uint64 // the last version applied to the model
	entries map[string]*modelEntry
	cursors []string // every cursor seen: the start, snapshots, events
	snaps   []string // the snapshot cursors
}

type modelCase struct {
	ctx      context.Context
	cancel   context.CancelFunc
	tg       target
	store    *ephemeral.Store[string, string]
	limits   ephemeral.Limits
	tenants  []*tenantModel
	readers  []*stream
	mirrors  []*modelMirror
	advanced time.Duration
	reasons  int
	stats    *modelStats
}

type modelMirror struct {
	m       *ephemeral.Mirror[string, string]
	t       *tenantModel
	prefix  string
	changed chan struct{}
}

func newModelCase(rt *rapid.T, tg target, stats *modelStats) *modelCase {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	c := &modelCase{ctx: ctx, cancel: cancel, tg: tg, stats: stats}
	if rapid.Bool().Draw(rt, "smallMaxEvents") {
		c.limits.MaxEvents = smallMaxEvents
	}
	c.limits.MaxEntries = modelMaxEntries
	c.store = newStore(rt, tg.backend, "model-"+backend.NewEpoch(time.Now()), c.limits)
	for _, name := range modelTenants {
		r, err := c.store.Reader(ctx, ephemeral.WithTenant(name))
		if err != nil {
			c.close()
			rt.Fatalf("recorder of %q: %v", name, err)
		}
		cur, err := backend.ParseCursor(r.Cursor())
		if err != nil || cur.Seq != 0 {
			r.Close()
			c.close()
			rt.Fatalf("recorder of the new tenant %q starts at %q, %v; want version 0", name, r.Cursor(), err)
		}
		c.tenants = append(c.tenants, &tenantModel{
			name:    name,
			rec:     startStream(r, cur, ""),
			epoch:   cur.Epoch,
			entries: map[string]*modelEntry{},
			cursors: []string{r.Cursor()},
		})
	}
	return c
}

func (c *modelCase) close() {
	for _, m := range c.mirrors {
		m.m.Close()
	}
	for _, s := range c.readers {
		s.close()
	}
	for _, t := range c.tenants {
		t.rec.close()
	}
	c.tg.close()
	c.cancel()
}

func (c *modelCase) now() time.Time {
	if c.tg.now == nil {
		return time.Now()
	}
	return c.tg.now()
}

// op is one call of a writer and its result.
type op struct {
	kind   opKind
	tenant *tenantModel
	key    string
	value  string
	ttl    time.Duration
	cond   backend.Condition
	reason string // remove: unique, to find its delete event
	// A touch may be one of several keys of one TouchMany: its first holds the others (many),
	// which follow it in the writer's calls and are not run on their own (inMany).
	many   []*op
	inMany bool

	err     error
	entry   ephemeral.Entry[string, string] // upsert
	touch   ephemeral.TouchResult           // touch, quiet touch
	removed bool                            // remove
	version uint64                          // the version the call produced; 0 for none
}

type opKind uint8

const (
	opUpsert opKind = iota
	opTouch
	opQuiet
	opRemove
)

var opNames = [...]string{"upsert", "touch", "quiet touch", "remove"}

// opEvents are the event kinds of the calls that make one.
var opEvents = [...]ephemeral.EventKind{opUpsert: ephemeral.EventUpsert, opTouch: ephemeral.EventTouch, opRemove: ephemeral.EventDelete}

func (o *op) String() string {
	return fmt.Sprintf("%s %s/%s cond %+v ttl %v", opNames[o.kind], o.tenant.name, o.key, o.cond, o.ttl)
}

func (c *modelCase) drawOp(rt *rapid.T, quietOK bool) *op {
	t := c.tenants[rapid.IntRange(0, len(c.tenants)-1).Draw(rt, "tenant")]
	o := &op{
		kind:   opKind(rapid.IntRange(0, 3).Draw(rt, "kind")),
		tenant: t,
		key:    rapid.SampledFrom(modelKeys).Draw(rt, "key"),
		ttl:    time.Hour,
	}
	if o.kind == opQuiet && !quietOK {
		o.kind = opTouch
	}
	if c.tg.advance != nil {
		o.ttl = rapid.SampledFrom(fakeTTLs).Draw(rt, "ttl")
	}
	switch o.kind {
	case opUpsert:
		o.value = rapid.SampledFrom(modelValues).Draw(rt, "value")
	case opRemove:
		c.reasons++
		o.reason = "r" + strconv.Itoa(c.reasons)
	}
	kind := backend.CondKind(rapid.IntRange(0, int(backend.CondIfVersion)).Draw(rt, "cond"))
	if o.kind != opUpsert && (kind == backend.CondIfNew || kind == backend.CondIfExists) {
		kind = backend.CondNone
	}
	o.cond.Kind = kind
	if kind == backend.CondIfVersion {
		// Mostly the version the key has now, so that some succeed.
		v := rapid.Uint64Range(0, t.version+1).Draw(rt, "version")
		if e, ok := t.entries[o.key]; ok && rapid.Bool().Draw(rt, "current") {
			v = e.version
		}
		o.cond.Version = v
	}
	return o
}

// run makes the call.
func (o *op) run(ctx context.Context, s *ephemeral.Store[string, string]) {
	tenant := ephemeral.WithTenant(o.tenant.name)
	switch o.kind {
	case opUpsert:
		opts := []ephemeral.UpsertOption{tenant, ephemeral.WithTTL(o.ttl)}
		switch o.cond.Kind {
		case backend.CondIfNew:
			opts = append(opts, ephemeral.IfNew())
		case backend.CondIfExists:
			opts = append(opts, ephemeral.IfExists())
		case backend.CondIfVersion:
			opts = append(opts, ephemeral.IfVersion(o.cond.Version))
		}
		o.entry, o.err = s.Upsert(ctx, o.key, o.value, opts...)
		if o.err == nil {
			o.version = o.entry.Version
		}
	case opTouch, opQuiet:
		if o.inMany {
			return // run by the first touch of its TouchMany
		}
		opts := []ephemeral.TouchOption{tenant, ephemeral.WithTTL(o.ttl)}
		if o.kind == opQuiet {
			opts = append(opts, ephemeral.Quiet())
		}
		if o.cond.Kind == backend.CondIfVersion {
			opts = append(opts, ephemeral.IfVersion(o.cond.Version))
		}
		touches := append([]*op{o}, o.many...)
		if len(o.many) == 0 {
			o.touch, o.err = s.Touch(ctx, o.key, opts...)
		} else {
			keys := make([]string, len(touches))
			for i, t := range touches {
				keys[i] = t.key
			}
			res, err := s.TouchMany(ctx, keys, opts...)
			for i, t := range touches {
				t.err = err
				if err == nil {
					t.touch = res[i]
				}
			}
		}
		for _, t := range touches {
			if t.err == nil && t.touch.OK && t.kind == opTouch {
				t.version = t.touch.Version
			}
		}
	case opRemove:
		opts := []ephemeral.RemoveOption{tenant, ephemeral.WithReason(o.reason)}
		if o.cond.Kind == backend.CondIfVersion {
			opts = append(opts, ephemeral.IfVersion(o.cond.Version))
		}
		o.removed, o.err = s.Remove(ctx, o.key, opts...)
	}
}

// writes runs a step of one to three writers, concurrently, each making one to four calls; a
// touch without a condition may be a TouchMany of two or three keys (one may repeat), whose
// touches the model applies as calls one after the other. Only the first writer makes quiet
// touches: they produce no version, so the model places them after the version they report,
// which is unambiguous only for one writer.
func (c *modelCase) writes(rt *rapid.T) {
	progs := make([][]*op, rapid.IntRange(1, 3).Draw(rt, "writers"))
	for w := range progs {
		for range rapid.IntRange(1, 4).Draw(rt, "calls") {
			o := c.drawOp(rt, w == 0)
			progs[w] = append(progs[w], o)
			if (o.kind == opTouch || o.kind == opQuiet) && o.cond.Kind == backend.CondNone && rapid.Bool().Draw(rt, "many") {
				for range rapid.IntRange(1, 2).Draw(rt, "more keys") {
					t := *o
					t.key, t.inMany = rapid.SampledFrom(modelKeys).Draw(rt, "key"), true
					o.many = append(o.many, &t)
				}
				progs[w] = append(progs[w], o.many...)
			}
		}
	}
	var wg sync.WaitGroup
	for _, prog := range progs {
		wg.Go(func() {
			for _, o := range prog {
				o.run(c.ctx, c.store)
			}
		})
	}
	wg.Wait()
	var all []*op
	for _, prog := range progs {
		all = append(all, prog...)
	}
	c.stats.ops.Add(int64(len(all)))
	for _, t := range c.tenants {
		c.matchEvents(rt, t, all)
	}
	if len(progs) == 1 {
		c.applySequential(rt, progs[0])
	} else {
		c.applyConcurrent(rt, all)
	}
}

// matchEvents waits for the recorder of t to receive the events of the calls, checks that the
// new versions are exactly those of the successful calls, and gives the removes their
// versions.
func (c *modelCase) matchEvents(rt *rapid.T, t *tenantModel, ops []*op) {
	byVersion := map[uint64]*op{}
	byReason := map[string]*op{}
	n := 0
	for _, o := range ops {
		if o.tenant != t {
			continue
		}
		switch {
		case o.err != nil && !errors.Is(o.err, ephemeral.ErrConflict) && !errors.Is(o.err, ephemeral.ErrCapacity):
			rt.Fatalf("%v: unexpected error %v", o, o.err)
		case o.version != 0:
			if byVersion[o.version] != nil {
				rt.Fatalf("%v and %v both returned version %d", byVersion[o.version], o, o.version)
			}
			byVersion[o.version] = o
			n++
		case o.removed:
			byReason[o.reason] = o
			n++
		}
	}
	for i, ev := range c.history(rt, t, t.version+uint64(n))[t.version:] {
		c.checkCursor(rt, t, ev, t.version+uint64(i)+1)
		var o *op
		switch ev.Kind {
		case ephemeral.EventUpsert, ephemeral.EventTouch:
			o = byVersion[ev.Version]
			delete(byVersion, ev.Version)
		case ephemeral.EventDelete:
			o = byReason[ev.Reason]
			delete(byReason, ev.Reason)
			if o != nil {
				o.version = ev.Version
			}
		}
		if o == nil || ev.Key != o.key || ev.Kind != opEvents[o.kind] {
			rt.Fatalf("tenant %q: event %+v matches no successful call (%v)", t.name, ev, o)
		}
	}
	if len(byVersion)+len(byReason) != 0 {
		rt.Fatalf("tenant %q: successful calls without an event: %v %v", t.name, slices.Collect(maps.Values(byVersion)), slices.Collect(maps.Values(byReason)))
	}
}

// history waits until the recorder of t has n events, checks that they are versions 1 to n
// without an overflow, and returns them.
func (c *modelCase) history(rt *rapid.T, t *tenantModel, n uint64) []ephemeral.Event[string, string] {
	ctx, cancel := context.WithTimeout(c.ctx, waitFor)
	defer cancel()
	err := t.rec.wait(ctx, func(evs []ephemeral.Event[string, string]) (bool, error) {
		for i := t.version; i < uint64(len(evs)); i++ {
			if ev := evs[i]; ev.Kind == ephemeral.EventOverflow || ev.Version != i+1 {
				return false, fmt.Errorf("recorder event %d: %+v, want version %d", i, ev, i+1)
			}
		}
		return uint64(len(evs)) >= n, nil
	})
	if err != nil {
		rt.Fatalf("tenant %q, want %d events: %v", t.name, n, err)
	}
	evs, _ := t.rec.received()
	return evs[:n]
}

func (c *modelCase) checkCursor(rt *rapid.T, t *tenantModel, ev ephemeral.Event[string, string], version uint64) {
	want := backend.Cursor{Epoch: t.epoch, Seq: version}.String()
	if ev.Version != version || ev.Cursor != want {
		rt.Fatalf("tenant %q: event %+v, want version %d and cursor %s", t.name, ev, version, want)
	}
}

// applySequential applies the calls of one writer to the model in their order, checking every
// result, also the rejected ones and those that changed nothing.
func (c *modelCase) applySequential(rt *rapid.T, ops []*op) {
	for _, o := range ops {
		c.apply(rt, o, true)
	}
}

// applyConcurrent applies the calls of several writers to the model in the order of their
// versions; a quiet touch goes right after the version it reports for its key. Calls that
// changed nothing cannot be placed and are not checked beyond their error kind.
func (c *modelCase) applyConcurrent(rt *rapid.T, ops []*op) {
	type placed struct {
		after uint64 // the version the call comes after (or produced)
		quiet bool
		i     int
		o     *op
	}
	var order []placed
	for i, o := range ops {
		switch {
		case o.version != 0:
			order = append(order, placed{o.version, false, i, o})
		case o.kind == opQuiet && o.err == nil && o.touch.OK:
			order = append(order, placed{o.touch.Version, true, i, o})
		}
	}
	slices.SortFunc(order, func(x, y placed) int {
		return cmp.Or(strings.Compare(x.o.tenant.name, y.o.tenant.name), cmp.Compare(x.after, y.after),
			boolCmp(x.quiet, y.quiet), cmp.Compare(x.i, y.i))
	})
	for _, p := range order {
		c.apply(rt, p.o, false)
	}
}

func boolCmp(x, y bool) int {
	switch {
	case x == y:
		return 0
	case !x:
		return -1
	}
	return 1
}

// apply applies one call to the model and checks its result and event. Calls that changed
// nothing are checked only when strict.
func (c *modelCase) apply(rt *rapid.T, o *op, strict bool) {
	t := o.tenant
	e, live := t.entries[o.key]
	holds := condHolds(o.cond, e, live)
	switch {
	case o.version != 0:
		if !holds {
			rt.Fatalf("%v succeeded, but the model has %+v (live %v)", o, e, live)
		}
		if o.version != t.version+1 {
			rt.Fatalf("%v: version %d applied after %d", o, o.version, t.version)
		}
		evs, _ := t.rec.received()
		c.applyEvent(rt, o, e, live, evs[o.version-1])
	case o.kind == opQuiet && o.err == nil && o.touch.OK:
		if !live || !holds || e.version != o.touch.Version {
			rt.Fatalf("%v at version %d succeeded, but the model has %+v (live %v)", o, o.touch.Version, e, live)
		}
		if c.tg.now != nil && !o.touch.ExpiresAt.Equal(c.now().Add(o.ttl)) {
			rt.Fatalf("%v: expires at %v, want %v", o, o.touch.ExpiresAt, c.now().Add(o.ttl))
		}
		e.expires = o.touch.ExpiresAt
		e.seen = append(e.seen, e.expires)
	case strict:
		c.checkNoChange(rt, o, e, live, holds)
	}
}

func condHolds(c backend.Condition, e *modelEntry, live bool) bool {
	switch c.Kind {
	case backend.CondIfNew:
		return !live
	case backend.CondIfExists:
		return live
	case backend.CondIfVersion:
		return live && e.version == c.Version
	}
	return true
}

// checkNoChange checks a call that produced no version against the model.
func (c *modelCase) checkNoChange(rt *rapid.T, o *op, e *modelEntry, live, holds bool) {
	full := !live && len(o.tenant.entries) >= modelMaxEntries
	var ok bool
	switch o.kind {
	case opUpsert:
		ok = errors.Is(o.err, ephemeral.ErrConflict) && !holds || errors.Is(o.err, ephemeral.ErrCapacity) && full
	case opTouch, opQuiet:
		// A touch of a key that is not live reports OK false; with a version condition it
		// may fail with ErrConflict instead.
		ok = o.err == nil && !o.touch.OK && !live ||
			errors.Is(o.err, ephemeral.ErrConflict) && !holds
	case opRemove:
		ok = o.err == nil && !o.removed && !live || errors.Is(o.err, ephemeral.ErrConflict) && !holds
	}
	if !ok {
		rt.Fatalf("%v: error %v, touch %+v, removed %v; the model has %+v (live %v, %d live entries)",
			o, o.err, o.touch, o.removed, e, live, len(o.tenant.entries))
	}
}

// applyEvent checks the event of a successful call and applies it to the model.
func (c *modelCase) applyEvent(rt *rapid.T, o *op, e *modelEntry, live bool, ev ephemeral.Event[string, string]) {
	t := o.tenant
	if c.tg.now != nil && !ev.At.Equal(c.now()) {
		rt.Fatalf("%v: event at %v, the clock reads %v", o, ev.At, c.now())
	}
	switch o.kind {
	case opUpsert:
		if !live && len(t.entries) >= modelMaxEntries {
			rt.Fatalf("%v: a new key in a full tenant (%d entries)", o, len(t.entries))
		}
		want := ephemeral.Entry[string, string]{Key: o.key, Value: o.value, Version: o.version, Epoch: t.epoch, CreatedAt: ev.At, UpdatedAt: ev.At, ExpiresAt: ev.At.Add(o.ttl)}
		if live {
			want.CreatedAt = e.created
		}
		if d := gocmp.Diff(want, ev.Entry()); d != "" {
			rt.Fatalf("%v: event entry (-want +got):\n%s", o, d)
		}
		if d := gocmp.Diff(want, o.entry); d != "" {
			rt.Fatalf("%v: returned entry (-want +got):\n%s", o, d)
		}
		t.entries[o.key] = &modelEntry{value: o.value, version: o.version, created: want.CreatedAt, updated: ev.At, expires: want.ExpiresAt, seen: []time.Time{want.ExpiresAt}}
	case opTouch:
		want := ephemeral.TouchResult{OK: true, Version: o.version, ExpiresAt: ev.At.Add(o.ttl)}
		if o.touch != want || !ev.ExpiresAt.Equal(want.ExpiresAt) {
			rt.Fatalf("%v: result %+v, event %+v, want %+v", o, o.touch, ev, want)
		}
		e.version, e.updated, e.expires, e.seen = o.version, ev.At, want.ExpiresAt, []time.Time{want.ExpiresAt}
	case opRemove:
		if !o.removed || ev.Reason != o.reason {
			rt.Fatalf("%v: event %+v", o, ev)
		}
		delete(t.entries, o.key)
	}
	t.version = o.version
	t.cursors = append(t.cursors, ev.Cursor)
	c.stats.events.Add(1)
}

// advance moves the clock (fake clocks only) and checks that exactly the entries due by then
// expire, each with one expire event.
func (c *modelCase) advance(rt *rapid.T) {
	if c.tg.advance == nil {
		rt.Skip("the clock of a real server cannot be moved")
	}
	d := rapid.SampledFrom([]time.Duration{time.Second, 3 * time.Second, 10 * time.Second, 30 * time.Second}).Draw(rt, "by")
	if c.advanced+d > maxAdvance {
		rt.Skip("the case moved the clock far enough")
	}
	c.advanced += d
	c.tg.advance(d)
	now := c.now()
	for _, t := range c.tenants {
		due := map[string]bool{}
		for k, e := range t.entries {
			if !e.expires.After(now) {
				due[k] = true
			}
		}
		c.snapshotDue(rt, t, due)
		n := uint64(len(due))
		for i, ev := range c.history(rt, t, t.version+n)[t.version:] {
			c.checkCursor(rt, t, ev, t.version+uint64(i)+1)
			e := t.entries[ev.Key]
			if ev.Kind != ephemeral.EventExpire || !due[ev.Key] || ev.At.Before(e.expires) || ev.At.After(now) {
				rt.Fatalf("tenant %q at %v: event %+v, want an expire of one of %v", t.name, now, ev, slices.Sorted(maps.Keys(due)))
			}
			delete(due, ev.Key)
			delete(t.entries, ev.Key)
			t.cursors = append(t.cursors, ev.Cursor)
			c.stats.events.Add(1)
		}
		t.version += n
	}
}

// snapshotDue checks a snapshot taken while the expire events of the due keys may still be on
// their way: it holds none of the due keys, whether or not they were reconciled yet.
func (c *modelCase) snapshotDue(rt *rapid.T, t *tenantModel, due map[string]bool) {
	snap, err := c.store.Snapshot(c.ctx, ephemeral.WithTenant(t.name))
	if err != nil {
		rt.Fatalf("snapshot of %q: %v", t.name, err)
	}
	cur, err := backend.ParseCursor(snap.Cursor)
	if err != nil || cur.Epoch != t.epoch || cur.Seq < t.version || cur.Seq > t.version+uint64(len(due)) {
		rt.Fatalf("snapshot of %q while %d keys expire: cursor %s, want version %d to %d", t.name, len(due), snap.Cursor, t.version, t.version+uint64(len(due)))
	}
	want := []ephemeral.Entry[string, string]{}
	for _, e := range t.list("") {
		if !due[e.Key] {
			want = append(want, e)
		}
	}
	if d := gocmp.Diff(want, snap.Entries); d != "" {
		rt.Fatalf("snapshot of %q while keys expire (-model +got):\n%s", t.name, d)
	}
	c.stats.snapshots.Add(1)
}

func (c *modelCase) drawTenant(rt *rapid.T) *tenantModel {
	return c.tenants[rapid.IntRange(0, len(c.tenants)-1).Draw(rt, "tenant")]
}

// snapshot checks a snapshot against the model: the same entries, the cursor of the last
// version.
func (c *modelCase) snapshot(rt *rapid.T) {
	t := c.drawTenant(rt)
	prefix := rapid.SampledFrom([]string{"", "d/"}).Draw(rt, "prefix")
	snap, err := c.store.Snapshot(c.ctx, ephemeral.WithTenant(t.name), ephemeral.WithPrefix(prefix))
	if err != nil {
		rt.Fatalf("snapshot of %q: %v", t.name, err)
	}
	if want := (backend.Cursor{Epoch: t.epoch, Seq: t.version}).String(); snap.Cursor != want {
		rt.Fatalf("snapshot of %q: cursor %s, want %s", t.name, snap.Cursor, want)
	}
	if d := gocmp.Diff(t.list(prefix), snap.Entries); d != "" {
		rt.Fatalf("snapshot of %q (-model +got):\n%s", t.name, d)
	}
	t.cursors = append(t.cursors, snap.Cursor)
	t.snaps = append(t.snaps, snap.Cursor)
	c.stats.snapshots.Add(1)
}

// list returns the model's entries with prefix, sorted by key.
func (t *tenantModel) list(prefix string) []ephemeral.Entry[string, string] {
	entries := []ephemeral.Entry[string, string]{}
	for _, k := range slices.Sorted(maps.Keys(t.entries)) {
		if strings.HasPrefix(k, prefix) {
			entries = append(entries, t.entry(k))
		}
	}
	return entries
}

func (t *tenantModel) entry(k string) ephemeral.Entry[string, string] {
	e := t.entries[k]
	return ephemeral.Entry[string, string]{Key: k, Value: e.value, Version: e.version, Epoch: t.epoch, CreatedAt: e.created, UpdatedAt: e.updated, ExpiresAt: e.expires}
}

func (c *modelCase) get(rt *rapid.T) {
	t := c.drawTenant(rt)
	key := rapid.SampledFrom(modelKeys).Draw(rt, "key")
	got, ok, err := c.store.Get(c.ctx, key, ephemeral.WithTenant(t.name))
	if err != nil {
		rt.Fatalf("get %q/%q: %v", t.name, key, err)
	}
	_, live := t.entries[key]
	if ok != live || live && !gocmp.Equal(t.entry(key), got) {
		rt.Fatalf("get %q/%q: %+v, %v; the model has %+v", t.name, key, got, ok, t.entries[key])
	}
}

// reader starts a reader: fresh, after a snapshot's cursor, after any older cursor, or after
// the tenant's first cursor.
func (c *modelCase) reader(rt *rapid.T) {
	t := c.drawTenant(rt)
	prefix := rapid.SampledFrom([]string{"", "d/"}).Draw(rt, "prefix")
	opts := []ephemeral.ReaderOption{ephemeral.WithTenant(t.name), ephemeral.WithPrefix(prefix)}
	var after string
	switch rapid.IntRange(0, 3).Draw(rt, "start") {
	case 1:
		if len(t.snaps) > 0 {
			after = rapid.SampledFrom(t.snaps).Draw(rt, "snapshot cursor")
		}
	case 2:
		after = rapid.SampledFrom(t.cursors).Draw(rt, "old cursor")
	case 3:
		after = t.cursors[0] // the oldest: it overflows once MaxEvents events followed
	}
	if after != "" {
		opts = append(opts, ephemeral.After(after))
	}
	r, err := c.store.Reader(c.ctx, opts...)
	if err != nil {
		rt.Fatalf("reader of %q after %q: %v", t.name, after, err)
	}
	cur, err := backend.ParseCursor(r.Cursor())
	if err != nil || after == "" && (cur.Epoch != t.epoch || cur.Seq != t.version) {
		r.Close()
		rt.Fatalf("fresh reader of %q starts at %q (%v), want version %d of epoch %s", t.name, r.Cursor(), err, t.version, t.epoch)
	}
	c.readers = append(c.readers, startStream(r, cur, prefix))
}

func (c *modelCase) mirror(rt *rapid.T) {
	t := c.drawTenant(rt)
	prefix := rapid.SampledFrom([]string{"", "d/"}).Draw(rt, "prefix")
	changed := make(chan struct{}, 1)
	m, err := c.store.Mirror(func(ephemeral.Change[string, string]) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}, ephemeral.WithTenant(t.name), ephemeral.WithPrefix(prefix), ephemeral.WithMirrorClock(c.now),
		ephemeral.WithBackoff(time.Millisecond, 20*time.Millisecond))
	if err != nil {
		rt.Fatalf("mirror of %q: %v", t.name, err)
	}
	c.mirrors = append(c.mirrors, &modelMirror{m: m, t: t, prefix: prefix, changed: changed})
}

// finish makes one last event per tenant, which must be the recorder's next (so no event was
// invented before it), then checks every reader and mirror against the full history.
func (c *modelCase) finish(rt *rapid.T) {
	for _, t := range c.tenants {
		o := &op{kind: opUpsert, tenant: t, key: "a", value: "end", ttl: time.Hour}
		if k := slices.Sorted(maps.Keys(t.entries)); len(k) > 0 {
			o = &op{kind: opTouch, tenant: t, key: k[0], ttl: time.Hour}
		}
		o.run(c.ctx, c.store)
		c.matchEvents(rt, t, []*op{o})
		c.applySequential(rt, []*op{o})
	}
	for _, s := range c.readers {
		c.checkReader(rt, s)
	}
	for _, m := range c.mirrors {
		c.checkMirror(rt, m)
	}
}

func (c *modelCase) tenantOf(cur backend.Cursor) *tenantModel {
	for _, t := range c.tenants {
		if t.epoch == cur.Epoch {
			return t
		}
	}
	return nil
}

// checkReader waits until s has the events of its tenant after its start and checks them.
func (c *modelCase) checkReader(rt *rapid.T, s *stream) {
	t := c.tenantOf(s.start)
	if t == nil {
		rt.Fatalf("reader started at %v, a cursor of no tenant", s.start)
	}
	hist, _ := t.rec.received()
	hist = hist[:t.version]
	overflowOK := c.limits.MaxEvents != 0
	ctx, cancel := context.WithTimeout(c.ctx, waitFor)
	defer cancel()
	err := s.wait(ctx, func(evs []ephemeral.Event[string, string]) (bool, error) {
		return checkEvents(evs, s.start, hist, s.prefix, overflowOK)
	})
	if err != nil {
		rt.Fatalf("reader of %q after %v, prefix %q: %v", t.name, s.start, s.prefix, err)
	}
	evs, _ := s.received()
	c.stats.readerEvents.Add(int64(len(evs)))
	for _, ev := range evs {
		if ev.Kind == ephemeral.EventOverflow {
			c.stats.overflows.Add(1)
		}
	}
}

// checkEvents reports whether evs are all the events of hist (versions 1 to len(hist)) after
// start whose keys have prefix, in order, each once; an overflow may skip events when
// overflowOK, but only forward. It fails at the first event that is not the expected one.
func checkEvents(evs []ephemeral.Event[string, string], start backend.Cursor, hist []ephemeral.Event[string, string], prefix string, overflowOK bool) (bool, error) {
	pos := start.Seq
	next := func() int { // the index in hist of the next expected event, or -1
		for i := pos; i < uint64(len(hist)); i++ {
			if strings.HasPrefix(hist[i].Key, prefix) {
				return int(i)
			}
		}
		return -1
	}
	for i, ev := range evs {
		if ev.Kind == ephemeral.EventOverflow {
			fa, err := backend.ParseCursor(ev.Cursor)
			if !overflowOK || err != nil || fa.Epoch != start.Epoch || fa.Seq <= pos || fa.Seq > uint64(len(hist)) {
				return false, fmt.Errorf("event %d: overflow %+v at version %d (allowed: %v)", i, ev, pos, overflowOK)
			}
			pos = fa.Seq
			continue
		}
		j := next()
		if j < 0 {
			return false, fmt.Errorf("event %d: %+v after the last event, version %d", i, ev, len(hist))
		}
		if d := gocmp.Diff(hist[j], ev); d != "" {
			return false, fmt.Errorf("event %d after version %d (-want +got):\n%s", i, pos, d)
		}
		pos = ev.Version
	}
	return next() < 0, nil
}

// checkMirror waits until the mirror equals the model.
func (c *modelCase) checkMirror(rt *rapid.T, m *modelMirror) {
	ctx, cancel := context.WithTimeout(c.ctx, waitFor)
	defer cancel()
	if err := m.m.Ready(ctx); err != nil {
		rt.Fatalf("mirror of %q: %v", m.t.name, err)
	}
	for {
		diff := mirrorDiff(m, c.now())
		if diff == "" {
			break
		}
		select {
		case <-m.changed:
		case <-ctx.Done():
			rt.Fatalf("mirror of %q, prefix %q, differs from the model: %s", m.t.name, m.prefix, diff)
		}
	}
	c.stats.mirrors.Add(1)
}

// mirrorDiff compares a mirror with the model. A mirror does not see quiet touches (they make
// no event): it may hold any expiry the entry had since its last event, and hide the entry
// once that passed.
func mirrorDiff(m *modelMirror, now time.Time) string {
	got := map[string]ephemeral.Entry[string, string]{}
	for k, e := range m.m.All() {
		got[k] = e
	}
	var diffs []string
	for k, e := range m.t.entries {
		if !strings.HasPrefix(k, m.prefix) {
			continue
		}
		g, ok := got[k]
		delete(got, k)
		want := m.t.entry(k)
		switch {
		case !ok && slices.ContainsFunc(e.seen, func(x time.Time) bool { return !x.After(now) }):
			// hidden: expired as far as the mirror may know
		case !ok:
			diffs = append(diffs, fmt.Sprintf("missing %+v", want))
		default:
			if slices.ContainsFunc(e.seen, g.ExpiresAt.Equal) {
				want.ExpiresAt = g.ExpiresAt
			}
			if d := gocmp.Diff(want, g); d != "" {
				diffs = append(diffs, d)
			}
		}
	}
	for _, g := range got {
		diffs = append(diffs, fmt.Sprintf("extra %+v", g))
	}
	return strings.Join(diffs, "; ")
}
