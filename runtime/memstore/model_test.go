package memstore_test

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"
)

// TestModel runs random sequences of calls and clock moves against a backend and a plain model
// of the contract, and compares every result and every event.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		m := newModel(rt)
		defer m.close()
		rt.Repeat(map[string]func(*rapid.T){
			"upsert":    m.upsert,
			"touch":     m.touch,
			"touchMany": m.touchMany,
			"remove":    m.remove,
			"advance":   m.advance,
			"get":       m.get,
			"snapshot":  m.snapshot,
		})
	})
}

var modelKeys = rapid.SampledFrom([]string{"a", "b", "c", "d", "e"})

type modelEntry struct {
	value                     string
	version                   uint64
	created, updated, expires int64
}

// The model's tenant and its capacity.
const (
	modelTenant     = "t"
	modelMaxEntries = 4
)

type model struct {
	ctx    context.Context
	cancel context.CancelFunc
	clock  *memstore.FakeClock
	b      *memstore.Backend
	sub    backend.Subscription
	st     backend.Store

	now     int64 // ms
	seq     uint64
	entries map[string]modelEntry
}

func newModel(rt *rapid.T) *model {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	clock := memstore.NewFakeClock(start)
	b := memstore.New(memstore.WithClock(clock))
	m := &model{
		ctx:     ctx,
		cancel:  cancel,
		clock:   clock,
		b:       b,
		st:      open(b, "model", backend.Limits{MaxEntries: modelMaxEntries}),
		now:     start.UnixMilli(),
		entries: make(map[string]modelEntry),
	}
	sub, err := m.st.Subscribe(ctx, modelTenant, backend.SubscribeRequest{})
	if err != nil {
		rt.Fatal(err)
	}
	m.sub = sub
	return m
}

func (m *model) close() {
	m.sub.Close()
	m.b.Close()
	m.cancel()
}

// expire removes the entries due by now from the model and checks their expire events: in
// order of expiry, each with the next version.
func (m *model) expire(rt *rapid.T) {
	var due []string
	for k, e := range m.entries {
		if e.expires <= m.now {
			due = append(due, k)
		}
	}
	slices.SortFunc(due, func(x, y string) int {
		if d := m.entries[x].expires - m.entries[y].expires; d != 0 {
			return int(d)
		}
		return strings.Compare(x, y)
	})
	got := make([]backend.Event, len(due))
	for i := range got {
		got[i] = m.next(rt)
		m.seq++
		if ev := got[i]; ev.Kind != backend.EventExpire || ev.Version != m.seq || ev.Cursor().Seq != m.seq ||
			(i > 0 && ev.At < got[i-1].At) {
			rt.Fatalf("expiry event %d: %+v, want an expire, version %d, in time order", i, ev, m.seq)
		}
	}
	// Entries that expire at the same instant may come in any order.
	slices.SortFunc(got, func(x, y backend.Event) int {
		return cmp.Or(cmp.Compare(x.At, y.At), strings.Compare(x.Key, y.Key))
	})
	for i, k := range due {
		exp := m.entries[k].expires
		want := backend.Event{Kind: backend.EventExpire, Epoch: got[i].Epoch, Key: k, Version: got[i].Version, At: exp, ExpiresAt: exp}
		if d := gocmp.Diff(want, got[i]); d != "" {
			rt.Fatalf("expire event (-want +got):\n%s", d)
		}
		delete(m.entries, k)
	}
}

func (m *model) next(rt *rapid.T) backend.Event {
	ev, err := m.sub.Next(m.ctx)
	if err != nil {
		rt.Fatalf("Next: %v", err)
	}
	e := *ev
	e.Memo = nil // the log's, not part of the event
	return e
}

// checkEvent compares ev with want, whose Version is m.seq.
func (m *model) checkEvent(rt *rapid.T, ev, want backend.Event) {
	want.Version, want.Epoch = m.seq, ev.Epoch
	if d := gocmp.Diff(want, ev); d != "" {
		rt.Fatalf("event (-want +got):\n%s", d)
	}
}

func (m *model) rawEntry(k string) backend.Entry {
	e := m.entries[k]
	return backend.Entry{
		Key:       k,
		Value:     []byte(e.value),
		Version:   e.version,
		Epoch:     m.sub.Start().Epoch,
		CreatedAt: e.created,
		UpdatedAt: e.updated,
		ExpiresAt: e.expires,
	}
}

// cond draws a condition, with versions near the live ones.
func (m *model) cond(rt *rapid.T, kinds ...backend.CondKind) backend.Condition {
	c := backend.Condition{Kind: rapid.SampledFrom(kinds).Draw(rt, "cond")}
	if c.Kind == backend.CondIfVersion {
		c.Version = rapid.Uint64Range(max(m.seq, 2)-2, m.seq+1).Draw(rt, "version")
		c.Epoch = rapid.SampledFrom([]string{"", m.sub.Start().Epoch, "other"}).Draw(rt, "epoch")
	}
	return c
}

func (m *model) holds(c backend.Condition, e modelEntry, live bool) bool {
	if c.Kind == backend.CondIfVersion && c.Epoch != "" && c.Epoch != m.sub.Start().Epoch {
		return false
	}
	return holds(c, e, live)
}

func holds(c backend.Condition, e modelEntry, live bool) bool {
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

func ttlDraw(rt *rapid.T) time.Duration {
	return time.Duration(rapid.IntRange(1, 50).Draw(rt, "ttl")) * time.Millisecond
}

func (m *model) upsert(rt *rapid.T) {
	key := modelKeys.Draw(rt, "key")
	value := rapid.StringN(0, 4, 4).Draw(rt, "value")
	ttl := ttlDraw(rt)
	cond := m.cond(rt, backend.CondNone, backend.CondIfNew, backend.CondIfExists, backend.CondIfVersion)
	got, err := m.st.Upsert(m.ctx, modelTenant, backend.UpsertRequest{Key: key, Value: []byte(value), TTL: ttl, Cond: cond})
	m.expire(rt)

	e, live := m.entries[key]
	switch {
	case !m.holds(cond, e, live):
		if !errors.Is(err, backend.ErrConflict) {
			rt.Fatalf("Upsert with %+v on %+v (live %v): %v, want ErrConflict", cond, e, live, err)
		}
		return
	case !live && len(m.entries) >= modelMaxEntries:
		if !errors.Is(err, backend.ErrCapacity) {
			rt.Fatalf("Upsert of a new key into a full tenant: %v, want ErrCapacity", err)
		}
		return
	case err != nil:
		rt.Fatalf("Upsert: %v", err)
	}
	if !live {
		e.created = m.now
	}
	m.seq++
	e.value, e.version, e.updated, e.expires = value, m.seq, m.now, m.now+ttl.Milliseconds()
	m.entries[key] = e
	want := m.rawEntry(key)
	if d := gocmp.Diff(want, got, ignoreMemo); d != "" {
		rt.Fatalf("Upsert (-want +got):\n%s", d)
	}
	m.checkEvent(rt, m.next(rt), backend.Event{Kind: backend.EventUpsert, Key: key, At: want.UpdatedAt, Value: want.Value, CreatedAt: want.CreatedAt, ExpiresAt: want.ExpiresAt})
}

func (m *model) touch(rt *rapid.T) {
	key := modelKeys.Draw(rt, "key")
	ttl := ttlDraw(rt)
	quiet := rapid.Bool().Draw(rt, "quiet")
	cond := m.cond(rt, backend.CondNone, backend.CondIfVersion)
	got, err := m.st.Touch(m.ctx, modelTenant, backend.TouchRequest{Key: key, TTL: ttl, Quiet: quiet, Cond: cond})
	m.expire(rt)

	e, live := m.entries[key]
	switch {
	case !m.holds(cond, e, live):
		if !errors.Is(err, backend.ErrConflict) {
			rt.Fatalf("Touch with %+v on %+v (live %v): %v, want ErrConflict", cond, e, live, err)
		}
		return
	case err != nil:
		rt.Fatalf("Touch: %v", err)
	case !live:
		if got != (backend.TouchResult{}) {
			rt.Fatalf("Touch of a missing key: %+v", got)
		}
		return
	}
	e.expires = m.now + ttl.Milliseconds()
	if !quiet {
		m.seq++
		e.version, e.updated = m.seq, m.now
	}
	m.entries[key] = e
	want := backend.TouchResult{OK: true, Version: e.version, ExpiresAt: e.expires}
	if d := gocmp.Diff(want, got); d != "" {
		rt.Fatalf("Touch (-want +got):\n%s", d)
	}
	if !quiet {
		m.checkEvent(rt, m.next(rt), backend.Event{Kind: backend.EventTouch, Key: key, At: m.now, ExpiresAt: want.ExpiresAt})
	}
}

// touchMany is touch for many keys at once, with no condition, one of them perhaps more than
// once: each touched in its order, at one instant.
func (m *model) touchMany(rt *rapid.T) {
	keys := rapid.SliceOf(modelKeys).Draw(rt, "keys")
	ttl := ttlDraw(rt)
	quiet := rapid.Bool().Draw(rt, "quiet")
	got, err := m.st.TouchMany(m.ctx, modelTenant, backend.TouchManyRequest{Keys: keys, TTL: ttl, Quiet: quiet})
	if err != nil {
		rt.Fatalf("TouchMany: %v", err)
	}
	m.expire(rt)
	want := make([]backend.TouchResult, len(keys))
	var events []backend.Event
	for i, key := range keys {
		e, live := m.entries[key]
		if !live {
			continue
		}
		e.expires = m.now + ttl.Milliseconds()
		if !quiet {
			m.seq++
			e.version, e.updated = m.seq, m.now
			events = append(events, backend.Event{Kind: backend.EventTouch, Key: key, Version: m.seq, At: m.now, ExpiresAt: e.expires})
		}
		m.entries[key] = e
		want[i] = backend.TouchResult{OK: true, Version: e.version, ExpiresAt: e.expires}
	}
	if d := gocmp.Diff(want, got); d != "" {
		rt.Fatalf("TouchMany of %q (-want +got):\n%s", keys, d)
	}
	for _, want := range events {
		ev := m.next(rt)
		want.Epoch = ev.Epoch
		if d := gocmp.Diff(want, ev); d != "" {
			rt.Fatalf("event of TouchMany (-want +got):\n%s", d)
		}
	}
}

func (m *model) remove(rt *rapid.T) {
	key := modelKeys.Draw(rt, "key")
	cond := m.cond(rt, backend.CondNone, backend.CondIfVersion)
	got, err := m.st.Remove(m.ctx, modelTenant, backend.RemoveRequest{Key: key, Reason: "r", Cond: cond})
	m.expire(rt)

	e, live := m.entries[key]
	switch {
	case !m.holds(cond, e, live):
		if !errors.Is(err, backend.ErrConflict) {
			rt.Fatalf("Remove with %+v on %+v (live %v): %v, want ErrConflict", cond, e, live, err)
		}
		return
	case err != nil:
		rt.Fatalf("Remove: %v", err)
	case got != live:
		rt.Fatalf("Remove = %v, want %v", got, live)
	case !live:
		return
	}
	delete(m.entries, key)
	m.seq++
	m.checkEvent(rt, m.next(rt), backend.Event{Kind: backend.EventDelete, Key: key, At: m.now, Reason: "r"})
}

func (m *model) advance(rt *rapid.T) {
	d := rapid.IntRange(0, 30).Draw(rt, "advance ms")
	m.clock.Advance(time.Duration(d) * time.Millisecond)
	m.now += int64(d)
	m.expire(rt) // the scheduler alone brings the expire events
}

// ignoreMemo leaves out of a comparison the memo slot that memstore hands out with each entry.
var ignoreMemo = cmpopts.IgnoreFields(backend.Entry{}, "Memo")

func (m *model) get(rt *rapid.T) {
	key := modelKeys.Draw(rt, "key")
	got, ok, err := m.st.Get(m.ctx, modelTenant, key)
	if err != nil {
		rt.Fatalf("Get: %v", err)
	}
	_, live := m.entries[key]
	if ok != live {
		rt.Fatalf("Get(%q) found %v, want %v", key, ok, live)
	}
	if live {
		if d := gocmp.Diff(m.rawEntry(key), got, ignoreMemo); d != "" {
			rt.Fatalf("Get (-want +got):\n%s", d)
		}
	}
}

func (m *model) snapshot(rt *rapid.T) {
	prefix := rapid.SampledFrom([]string{"", "a", "c", "z"}).Draw(rt, "prefix")
	got, err := m.st.Snapshot(m.ctx, modelTenant, prefix)
	if err != nil {
		rt.Fatalf("Snapshot: %v", err)
	}
	var want []backend.Entry
	for _, k := range slices.Sorted(maps.Keys(m.entries)) {
		if strings.HasPrefix(k, prefix) {
			want = append(want, m.rawEntry(k))
		}
	}
	if d := gocmp.Diff(want, got.Entries, ignoreMemo); d != "" {
		rt.Fatalf("Snapshot(%q) (-want +got):\n%s", prefix, d)
	}
	if got.Cursor.Seq != m.seq {
		rt.Fatalf("Snapshot cursor %v, want seq %d", got.Cursor, m.seq)
	}
}
