package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/google/go-cmp/cmp"
)

// cases are the suite's test cases, run in this order.
var cases = []struct {
	name string
	run  func(e *env)
}{
	{"UpsertGet", testUpsertGet},
	{"CreatedAt", testCreatedAt},
	{"TouchMissingOrExpired", testTouchMissingOrExpired},
	{"RemoveMissing", testRemoveMissing},
	{"GetNeverExpired", testGetNeverExpired},
	{"Capacity", testCapacity},
	{"PayloadLimit", testPayloadLimit},
	{"InvalidArguments", testInvalidArguments},
	{"InvalidCursors", testInvalidCursors},
	{"LimitsPerID", testLimitsPerID},
	{"TenantIsolation", testTenantIsolation},
	{"IDIsolation", testIDIsolation},
	{"ValueIsolation", testValueIsolation},
	{"Prefix", testPrefix},
	{"ByteOrder", testByteOrder},
	{"OverflowMaxEvents", testOverflowMaxEvents},
	{"OverflowRetention", testOverflowRetention},
	{"OverflowEpoch", testOverflowEpoch},
	{"ReaderAnchoring", testReaderAnchoring},
	{"SnapshotCursor", testSnapshotCursor},
	{"EmptyTenantCursor", testEmptyTenantCursor},
	{"SnapshotCursorConcurrent", testSnapshotCursorConcurrent},
	{"QuietTouch", testQuietTouch},
	{"TouchMany", testTouchMany},
	{"Conditions", testConditions},
	{"CursorConditions", testCursorConditions},
	{"EpochOrder", testEpochOrder},
	{"Expiry", testExpiry},
	{"MassExpiry", testMassExpiry},
	{"EventFields", testEventFields},
	{"ReaderClose", testReaderClose},
	{"BackendClose", testBackendClose},
	{"EventsIterator", testEventsIterator},
	{"TryRecv", testTryRecv},
	{"ValuesOwned", testValuesOwned},
	{"ConcurrentOneKey", func(e *env) { testConcurrent(e, func(g, i int) string { return "k" }) }},
	{"ConcurrentManyKeys", func(e *env) { testConcurrent(e, func(g, i int) string { return fmt.Sprintf("g%d/k%d", g, i%20) }) }},
}

func testUpsertGet(e *env) {
	s := e.store()
	e.mustMiss(s, "k")
	v := item{Name: "é\x00\"\\\n ☃", N: -7}
	ent := e.upsert(s, "k", v, ephemeral.WithTTL(time.Minute))
	if ent.Key != "k" || ent.Value != v || ent.Version == 0 {
		e.Fatalf("Upsert returned %+v", ent)
	}
	if !ent.CreatedAt.Equal(ent.UpdatedAt) || ent.ExpiresAt.Sub(ent.UpdatedAt) != time.Minute {
		e.Fatalf("new entry times: created %v updated %v expires %v, want created = updated = expires - 1m",
			ent.CreatedAt, ent.UpdatedAt, ent.ExpiresAt)
	}
	e.mustGet(s, "k", ent)

	ent2 := e.upsert(s, "k", item{Name: "two", N: 2})
	if ent2.Version <= ent.Version {
		e.Fatalf("second upsert version %d, want > %d", ent2.Version, ent.Version)
	}
	if ent2.ExpiresAt.Sub(ent2.UpdatedAt) != longTTL {
		e.Fatalf("upsert with the default TTL expires %v after its update, want %v", ent2.ExpiresAt.Sub(ent2.UpdatedAt), longTTL)
	}
	e.mustGet(s, "k", ent2)
	if !e.remove(s, "k") {
		e.Fatal("Remove of a live key = false")
	}
	e.mustMiss(s, "k")
}

func testCreatedAt(e *env) {
	s := e.store()
	step := 10 * time.Millisecond
	a := e.upsert(s, "k", item{N: 1})
	e.advance(step)
	b := e.upsert(s, "k", item{N: 2})
	if !b.CreatedAt.Equal(a.CreatedAt) || !b.UpdatedAt.After(a.UpdatedAt) {
		e.Fatalf("after a second upsert: created %v updated %v, want created %v and updated after %v",
			b.CreatedAt, b.UpdatedAt, a.CreatedAt, a.UpdatedAt)
	}
	e.advance(step)
	tr := e.touch(s, "k")
	got, _ := e.get(s, "k")
	if !got.CreatedAt.Equal(a.CreatedAt) || !got.UpdatedAt.After(b.UpdatedAt) || got.Version != tr.Version {
		e.Fatalf("after a touch: %+v, want created %v, updated after %v, version %d", got, a.CreatedAt, b.UpdatedAt, tr.Version)
	}

	e.remove(s, "k")
	e.advance(step)
	c := e.upsert(s, "k", item{N: 3})
	if !c.CreatedAt.After(a.CreatedAt) || !c.CreatedAt.Equal(c.UpdatedAt) {
		e.Fatalf("upsert after remove: created %v updated %v, want created = updated, after %v", c.CreatedAt, c.UpdatedAt, a.CreatedAt)
	}

	ttl := e.shortTTL()
	d := e.upsert(s, "x", item{}, ephemeral.WithTTL(ttl))
	e.advance(ttl)
	e.advance(step)
	f := e.upsert(s, "x", item{})
	if f.CreatedAt.Before(d.ExpiresAt) || !f.CreatedAt.Equal(f.UpdatedAt) {
		e.Fatalf("upsert after expiry: created %v updated %v, want created = updated, not before %v", f.CreatedAt, f.UpdatedAt, d.ExpiresAt)
	}
}

func testTouchMissingOrExpired(e *env) {
	s := e.store()
	ttl := e.shortTTL()
	e.upsert(s, "k", item{}, ephemeral.WithTTL(ttl))
	r := e.reader(s)
	for _, opts := range [][]ephemeral.TouchOption{nil, {ephemeral.Quiet()}} {
		if res := e.touch(s, "missing", opts...); res.OK {
			e.Fatalf("Touch of a missing key: %+v, want OK false", res)
		}
	}
	e.advance(ttl)
	for _, opts := range [][]ephemeral.TouchOption{nil, {ephemeral.Quiet()}} {
		if res := e.touch(s, "k", opts...); res.OK {
			e.Fatalf("Touch of an expired key: %+v, want OK false", res)
		}
	}
	e.recvKind(r, ephemeral.EventExpire, "k")
	e.noEventBefore(s, r)
	e.mustMiss(s, "k")
}

func testRemoveMissing(e *env) {
	s := e.store()
	e.upsert(s, "k", item{})
	e.writesNothing(s, func() {
		if e.remove(s, "missing", ephemeral.WithReason("gone")) {
			e.Fatal("Remove of a missing key = true")
		}
	})
}

func testGetNeverExpired(e *env) {
	s := e.store()
	ttl := e.shortTTL()
	ent := e.upsert(s, "k", item{N: 1}, ephemeral.WithTTL(ttl))
	if e.h.RealTime {
		e.advance(ttl)
	} else {
		e.advance(ttl - time.Millisecond)
		e.mustGet(s, "k", ent)
		e.advance(time.Millisecond) // exactly ExpiresAt
	}
	e.mustMiss(s, "k")
	if snap := e.snapshot(s); len(snap.Entries) != 0 {
		e.Fatalf("snapshot at the expiry holds %+v", snap.Entries)
	}
	e.advance(time.Millisecond)
	e.mustMiss(s, "k")
}

func testCapacity(e *env) {
	s := e.store(ephemeral.WithLimits(ephemeral.Limits{MaxEntries: 3}))
	ttl := e.shortTTL()
	e.upsert(s, "sentinel", item{})
	e.upsert(s, "a", item{}, ephemeral.WithTTL(ttl))
	e.upsert(s, "b", item{}, ephemeral.WithTTL(ttl))
	e.writesNothing(s, func() {
		_, err := s.Upsert(e.ctx, "c", item{})
		e.wantErr("Upsert of a new key in a full tenant", err, ephemeral.ErrCapacity)
		_, err = s.Upsert(e.ctx, "c", item{}, ephemeral.IfNew())
		e.wantErr("Upsert IfNew of a new key in a full tenant", err, ephemeral.ErrCapacity)
	})
	a := e.upsert(s, "a", item{N: 1}, ephemeral.WithTTL(ttl)) // replacing works when full
	e.mustGet(s, "a", a)

	e.advance(ttl) // a and b expire; nothing else happens before the next upserts
	e.upsert(s, "c", item{})
	e.upsert(s, "d", item{})
	_, err := s.Upsert(e.ctx, "e", item{})
	e.wantErr("Upsert of a new key when sentinel, c and d are live", err, ephemeral.ErrCapacity)
	// The error names the key and the limit, and what to do, alike on every backend.
	const want = `ephemeral: tenant is at capacity: new key "e": the tenant holds its limit of 3 live entries (Limits.MaxEntries: raise it, or remove entries)`
	if err == nil || err.Error() != want {
		e.Errorf("Upsert in a full tenant: %v, want %s", err, want)
	}
}

func testPayloadLimit(e *env) {
	const limit = 64
	s := e.store(ephemeral.WithLimits(ephemeral.Limits{MaxPayloadBytes: limit}))
	name := strings.Repeat("x", limit-itemOverhead)
	fits := e.upsert(s, "fits", item{Name: name})
	e.writesNothing(s, func() {
		_, err := s.Upsert(e.ctx, "big", item{Name: name + "x"})
		e.wantErr("Upsert of a new key over the payload limit", err, ephemeral.ErrPayloadTooLarge)
		const want = `ephemeral: payload too large: key "big": 65 bytes, limit 64 (Limits.MaxPayloadBytes: raise it, or write less)`
		if err == nil || err.Error() != want {
			e.Errorf("Upsert over the payload limit: %v, want %s", err, want)
		}
		_, err = s.Upsert(e.ctx, "fits", item{Name: name + "x"})
		e.wantErr("Upsert of a live key over the payload limit", err, ephemeral.ErrPayloadTooLarge)
	})
	e.mustGet(s, "fits", fits)
}

func testInvalidArguments(e *env) {
	s := e.store()
	e.upsert(s, strings.Repeat("k", ephemeral.MaxKeyBytes), item{})
	e.upsert(s, "k", item{}, ephemeral.WithTenant(strings.Repeat("t", ephemeral.MaxTenantBytes)))
	e.upsert(e.storeID(strings.Repeat("i", ephemeral.MaxIDBytes)), "k", item{})
	for _, tc := range []struct {
		cfg  config
		want error
	}{
		{config{ID: "", TTL: time.Minute}, ephemeral.ErrInvalidID},
		{config{ID: strings.Repeat("i", ephemeral.MaxIDBytes+1), TTL: time.Minute}, ephemeral.ErrInvalidID},
		{config{ID: e.id, TTL: time.Minute, Tenant: strings.Repeat("t", ephemeral.MaxTenantBytes+1)}, ephemeral.ErrInvalidTenant},
		{config{ID: e.id, TTL: 0}, ephemeral.ErrInvalidTTL},
		{config{ID: e.id, TTL: -time.Second}, ephemeral.ErrInvalidTTL},
	} {
		tc.cfg.Codec = itemCodec{}
		_, err := ephemeral.New(e.h.Backend, tc.cfg)
		e.wantErr(fmt.Sprintf("New(ID of %d bytes, tenant of %d bytes, TTL %v)", len(tc.cfg.ID), len(tc.cfg.Tenant), tc.cfg.TTL), err, tc.want)
	}

	badTenant := ephemeral.WithTenant(strings.Repeat("t", ephemeral.MaxTenantBytes+1))
	e.writesNothing(s, func() {
		for _, key := range []string{"", strings.Repeat("k", ephemeral.MaxKeyBytes+1)} {
			what := fmt.Sprintf("key of %d bytes", len(key))
			_, err := s.Upsert(e.ctx, key, item{})
			e.wantErr("Upsert, "+what, err, ephemeral.ErrInvalidKey)
			_, err = s.Touch(e.ctx, key)
			e.wantErr("Touch, "+what, err, ephemeral.ErrInvalidKey)
			_, err = s.Remove(e.ctx, key)
			e.wantErr("Remove, "+what, err, ephemeral.ErrInvalidKey)
			_, _, err = s.Get(e.ctx, key)
			e.wantErr("Get, "+what, err, ephemeral.ErrInvalidKey)
		}

		// A tenant of more than MaxTenantBytes is an error; an empty one is too, never the
		// default tenant: a tenant missing from request data must not share the default one.
		for what, bad := range map[string]ephemeral.TenantOption{"long tenant": badTenant, "empty tenant": ephemeral.WithTenant("")} {
			_, err := s.Upsert(e.ctx, "k", item{}, bad)
			e.wantErr("Upsert, "+what, err, ephemeral.ErrInvalidTenant)
			_, err = s.Touch(e.ctx, "k", bad)
			e.wantErr("Touch, "+what, err, ephemeral.ErrInvalidTenant)
			_, err = s.Remove(e.ctx, "k", bad)
			e.wantErr("Remove, "+what, err, ephemeral.ErrInvalidTenant)
			_, _, err = s.Get(e.ctx, "k", bad)
			e.wantErr("Get, "+what, err, ephemeral.ErrInvalidTenant)
			_, err = s.Snapshot(e.ctx, bad)
			e.wantErr("Snapshot, "+what, err, ephemeral.ErrInvalidTenant)
			_, err = s.Reader(e.ctx, bad)
			e.wantErr("Reader, "+what, err, ephemeral.ErrInvalidTenant)
			_, err = s.Mirror(nil, bad)
			e.wantErr("Mirror, "+what, err, ephemeral.ErrInvalidTenant)
		}
		_, err := ephemeral.New(e.h.Backend, config{ID: e.id, TTL: longTTL, Codec: itemCodec{}}, ephemeral.WithDefaultTenant(""))
		e.wantErr("New WithDefaultTenant(\"\")", err, ephemeral.ErrInvalidTenant)

		for _, ttl := range []time.Duration{0, -time.Nanosecond, -time.Hour} {
			_, err := s.Upsert(e.ctx, "k", item{N: 1}, ephemeral.WithTTL(ttl))
			e.wantErr(fmt.Sprintf("Upsert with TTL %v", ttl), err, ephemeral.ErrInvalidTTL)
			_, err = s.Touch(e.ctx, "k", ephemeral.WithTTL(ttl))
			e.wantErr(fmt.Sprintf("Touch with TTL %v", ttl), err, ephemeral.ErrInvalidTTL)
			_, err = s.Touch(e.ctx, "k", ephemeral.WithTTL(ttl), ephemeral.Quiet())
			e.wantErr(fmt.Sprintf("quiet Touch with TTL %v", ttl), err, ephemeral.ErrInvalidTTL)
		}

		_, err = s.Remove(e.ctx, "k", ephemeral.WithReason(strings.Repeat("r", ephemeral.MaxReasonBytes+1)))
		e.wantErr("Remove with a long reason", err, ephemeral.ErrPayloadTooLarge)
	})
}

// testLimitsPerID checks the rule of limits: they belong to a store ID, so a store of an ID
// that is open with other limits is refused, and stores of one ID with the same limits share
// the state.
func testLimitsPerID(e *env) {
	small := ephemeral.WithLimits(ephemeral.Limits{MaxEntries: 2})
	a := e.store(small)
	_, err := ephemeral.New(e.h.Backend, config{ID: e.id, TTL: longTTL, Codec: itemCodec{}}, ephemeral.WithLimits(ephemeral.Limits{MaxEntries: 3}))
	e.wantErr("New of an open ID with other limits", err, ephemeral.ErrInvalidConfig)
	_, err = ephemeral.New(e.h.Backend, config{ID: e.id, TTL: longTTL, Codec: itemCodec{}})
	e.wantErr("New of an open ID with the default limits", err, ephemeral.ErrInvalidConfig)

	// The same limits, spelled out or by default, are the same limits.
	b := e.store(ephemeral.WithLimits(ephemeral.Limits{MaxEntries: 2, MaxPayloadBytes: 4096}))
	ent := e.upsert(a, "k1", item{N: 1})
	e.mustGet(b, "k1", ent)
	e.upsert(b, "k2", item{N: 2})
	_, err = a.Upsert(e.ctx, "k3", item{N: 3})
	e.wantErr("Upsert of a third key with MaxEntries 2", err, ephemeral.ErrCapacity)

	// Another ID has limits of its own.
	other := e.storeID(e.id+"-other", ephemeral.WithLimits(ephemeral.Limits{MaxEntries: 3}))
	for i := range 3 {
		e.upsert(other, fmt.Sprint("k", i), item{})
	}
}

func testInvalidCursors(e *env) {
	s := e.store()
	e.upsert(s, "k", item{})
	c := e.cursor(e.snapshot(s).Cursor)
	bad := []string{
		"", "-", "0", "garbage", "1-2-3", "é-1", "epoch-1 ", " epoch-1",
		c.Epoch, c.Epoch + "-", c.Epoch + "-x", c.Epoch + "-01", c.Epoch + "-+1", c.Epoch + "--1",
		c.Epoch + "-18446744073709551616", strings.Repeat("a", backend.MaxEpochBytes+1) + "-1",
	}
	e.writesNothing(s, func() {
		for _, b := range bad {
			_, err := s.Reader(e.ctx, ephemeral.After(b))
			e.wantErr(fmt.Sprintf("Reader after %q", b), err, ephemeral.ErrInvalidCursor)
		}
		for _, seq := range []uint64{c.Seq + 1, c.Seq + 1000} {
			beyond := backend.Cursor{Epoch: c.Epoch, Seq: seq}.String()
			_, err := s.Reader(e.ctx, ephemeral.After(beyond))
			e.wantErr(fmt.Sprintf("Reader after %q, beyond the last event %d", beyond, c.Seq), err, ephemeral.ErrInvalidCursor)
		}
	})
}

func testTenantIsolation(e *env) {
	s := e.store()
	t1, t2 := ephemeral.WithTenant("tenant:one"), ephemeral.WithTenant("tenant:two")
	r1, r2 := e.reader(s, t1), e.reader(s, t2)
	a := e.upsert(s, "k", item{N: 1}, t1)
	b := e.upsert(s, "k", item{N: 2}, t2)
	e.mustGet(s, "k", a, t1)
	e.mustGet(s, "k", b, t2)
	e.mustMiss(s, "k")
	if ev := e.recvKind(r1, ephemeral.EventUpsert, "k"); ev.Value.N != 1 {
		e.Fatalf("tenant one's reader got %+v", ev)
	}
	if ev := e.recvKind(r2, ephemeral.EventUpsert, "k"); ev.Value.N != 2 {
		e.Fatalf("tenant two's reader got %+v", ev)
	}

	e.remove(s, "k", t1)
	e.mustMiss(s, "k", t1)
	e.mustGet(s, "k", b, t2)
	e.recvKind(r1, ephemeral.EventDelete, "k")
	e.upsert(s, "other", item{}, t2)
	e.recvKind(r2, ephemeral.EventUpsert, "other")
	if snap := e.snapshot(s, t1); len(snap.Entries) != 0 {
		e.Fatalf("tenant one's snapshot holds %+v", snap.Entries)
	}
	if snap := e.snapshot(s, t2); len(snap.Entries) != 2 {
		e.Fatalf("tenant two's snapshot holds %+v, want k and other", snap.Entries)
	}

	capped := e.storeID(e.id+"-capped", ephemeral.WithLimits(ephemeral.Limits{MaxEntries: 1}))
	e.upsert(capped, "x", item{}, t1)
	_, err := capped.Upsert(e.ctx, "y", item{}, t1)
	e.wantErr("Upsert of a second key in a tenant of one entry", err, ephemeral.ErrCapacity)
	e.upsert(capped, "y", item{}, t2)
}

// testIDIsolation checks that stores of different IDs on one backend, and pairs of ID and
// tenant that a careless key scheme would join to the same name, do not share state.
func testIDIsolation(e *env) {
	pairs := []struct{ id, tenant string }{
		{e.id, "x:y"},
		{e.id + ":x", "y"},
		{e.id + "}", "{x:y"},
		{e.id + "-2", "x:y"},
		{e.id, "x\x00y"},
		{e.id + "\x00x", "y"},
	}
	var stores []*ephemeral.Store[string, item]
	var readers []*ephemeral.Reader[string, item]
	for i, p := range pairs {
		s := e.storeID(p.id, ephemeral.WithDefaultTenant(p.tenant))
		stores = append(stores, s)
		readers = append(readers, e.reader(s))
		e.upsert(s, "k", item{N: i})
	}
	for i, s := range stores {
		got, ok := e.get(s, "k")
		if !ok || got.Value.N != i {
			e.Fatalf("store %q tenant %q: Get = %+v, %v; want N %d", pairs[i].id, pairs[i].tenant, got, ok, i)
		}
		if snap := e.snapshot(s); len(snap.Entries) != 1 || snap.Entries[0].Value.N != i {
			e.Fatalf("store %q tenant %q: snapshot %+v, want one entry with N %d", pairs[i].id, pairs[i].tenant, snap.Entries, i)
		}
		if ev := e.recvKind(readers[i], ephemeral.EventUpsert, "k"); ev.Value.N != i {
			e.Fatalf("store %q tenant %q: event %+v, want N %d", pairs[i].id, pairs[i].tenant, ev, i)
		}
	}
	e.remove(stores[0], "k")
	for i, s := range stores[1:] {
		if _, ok := e.get(s, "k"); !ok {
			e.Fatalf("removing k of store %q tenant %q removed it from store %q tenant %q", pairs[0].id, pairs[0].tenant, pairs[i+1].id, pairs[i+1].tenant)
		}
		e.noEventBefore(s, readers[i+1])
	}
}

func testPrefix(e *env) {
	s := e.store()
	for _, k := range []string{"a", "ab", "a\x00", "b", "ba", "room:1/u1", "room:1/u2", "room:10/u1"} {
		e.upsert(s, k, item{Name: k})
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"room:1/", []string{"room:1/u1", "room:1/u2"}},
		{"a", []string{"a", "a\x00", "ab"}},
		{"", []string{"a", "a\x00", "ab", "b", "ba", "room:1/u1", "room:1/u2", "room:10/u1"}},
		{"zzz", nil},
	} {
		if got := keys(e.snapshot(s, ephemeral.WithPrefix(tc.prefix)).Entries); !slices.Equal(got, tc.want) {
			e.Fatalf("snapshot with prefix %q: keys %q, want %q", tc.prefix, got, tc.want)
		}
	}

	r := e.reader(s, ephemeral.WithPrefix("room:1/"))
	e.upsert(s, "room:10/u2", item{})
	e.upsert(s, "b", item{})
	e.remove(s, "room:1/u1")
	e.upsert(s, "room:1", item{})
	e.upsert(s, "room:1/u3", item{})
	e.recvKind(r, ephemeral.EventDelete, "room:1/u1")
	e.recvKind(r, ephemeral.EventUpsert, "room:1/u3")
}

func keys(entries []ephemeral.Entry[string, item]) []string {
	var ks []string
	for _, en := range entries {
		ks = append(ks, en.Key)
	}
	return ks
}

func testByteOrder(e *env) {
	s := e.store()
	ks := []string{"B", "a", "é", "_x", "10", "9", "a\x00", "A", "~", "Z", "a b", "ä", "\x01", "aa", "1", "Ω", "z"}
	for _, k := range ks {
		e.upsert(s, k, item{})
	}
	want := slices.Clone(ks)
	slices.Sort(want) // Go compares strings byte by byte
	if got := keys(e.snapshot(s).Entries); !slices.Equal(got, want) {
		e.Fatalf("snapshot keys %q, want byte order %q", got, want)
	}
}

func testOverflowMaxEvents(e *env) {
	const maxEvents = 5
	s := e.store(ephemeral.WithLimits(ephemeral.Limits{MaxEvents: maxEvents}))
	snap := e.snapshot(s)
	c0 := e.cursor(snap.Cursor)
	live := e.reader(s) // anchored now, but reads only after the log moved on
	var last uint64
	for i := range 2 * maxEvents {
		last = e.upsert(s, fmt.Sprint("k", i), item{N: i}).Version
	}
	for _, r := range []*ephemeral.Reader[string, item]{e.reader(s, ephemeral.After(snap.Cursor)), live} {
		ev := e.recv(r)
		if ev.Kind != ephemeral.EventOverflow || ev.After != snap.Cursor || ev.Key != "" || ev.Version != 0 {
			e.Fatalf("first event %+v, want overflow after %s", ev, snap.Cursor)
		}
		fa := e.cursor(ev.Cursor)
		if fa.Epoch != c0.Epoch || fa.Seq < last-maxEvents || fa.Seq <= c0.Seq || fa.Seq >= last {
			e.Fatalf("overflow Cursor %s, want epoch %s and seq in [%d, %d)", ev.Cursor, c0.Epoch, last-maxEvents, last)
		}
		for want := fa.Seq + 1; want <= last; want++ {
			if ev := e.recv(r); ev.Kind != ephemeral.EventUpsert || ev.Version != want {
				e.Fatalf("after the overflow: %v event of %q version %d, want upsert version %d", ev.Kind, ev.Key, ev.Version, want)
			}
		}
	}
}

func testOverflowRetention(e *env) {
	retention := 2 * time.Second
	if e.h.RealTime {
		retention = time.Second
	}
	s := e.store(ephemeral.WithLimits(ephemeral.Limits{EventRetention: retention}))
	snap := e.snapshot(s)
	e.upsert(s, "a", item{})
	old := e.upsert(s, "b", item{})
	e.advance(retention + 100*time.Millisecond)
	e.upsert(s, "c", item{})
	r := e.reader(s, ephemeral.After(snap.Cursor))
	ev := e.recv(r)
	want := backend.Cursor{Epoch: e.cursor(snap.Cursor).Epoch, Seq: old.Version}.String()
	if ev.Kind != ephemeral.EventOverflow || ev.After != snap.Cursor || ev.Cursor != want {
		e.Fatalf("first event %+v, want overflow after %s, continuing after %s", ev, snap.Cursor, want)
	}
	e.recvKind(r, ephemeral.EventUpsert, "c")
}

func testOverflowEpoch(e *env) {
	s := e.store()
	e.upsert(s, "a", item{})
	c := e.cursor(e.snapshot(s).Cursor)
	epoch := "foreign"
	if c.Epoch == epoch {
		epoch = "foreign2"
	}
	foreign := backend.Cursor{Epoch: epoch, Seq: c.Seq}.String()
	r := e.reader(s, ephemeral.After(foreign))
	if got := r.Cursor(); got != foreign {
		e.Fatalf("reader after %s starts at %s", foreign, got)
	}
	ev := e.recv(r)
	fa := e.cursor(ev.Cursor)
	if ev.Kind != ephemeral.EventOverflow || ev.After != foreign || fa.Epoch != c.Epoch || fa.Seq > c.Seq {
		e.Fatalf("first event %+v, want overflow after %s, continuing in epoch %s at or before %d", ev, foreign, c.Epoch, c.Seq)
	}
	b := e.upsert(s, "b", item{})
	for want := fa.Seq + 1; want <= b.Version; want++ {
		if ev := e.recv(r); ev.Version != want {
			e.Fatalf("after the overflow: %v event of %q version %d, want version %d", ev.Kind, ev.Key, ev.Version, want)
		}
	}
}

func testReaderAnchoring(e *env) {
	s := e.store()
	e.upsert(s, "before", item{})
	snap := e.snapshot(s)
	r := e.reader(s)
	if r.Cursor() != snap.Cursor {
		e.Fatalf("new reader's cursor %s, want the position of the last write %s", r.Cursor(), snap.Cursor)
	}
	ent := e.upsert(s, "after", item{}) // before the first Recv
	if ev := e.recvKind(r, ephemeral.EventUpsert, "after"); ev.Version != ent.Version {
		e.Fatalf("event version %d, want %d", ev.Version, ent.Version)
	}
}

func testSnapshotCursor(e *env) {
	s := e.store()
	e.upsert(s, "a", item{N: 1})
	e.upsert(s, "b", item{N: 1})
	snap := e.snapshot(s)
	if got := keys(snap.Entries); !slices.Equal(got, []string{"a", "b"}) {
		e.Fatalf("snapshot keys %q, want a, b", got)
	}
	c := e.upsert(s, "c", item{})
	a := e.upsert(s, "a", item{N: 2})
	e.remove(s, "b")
	r := e.reader(s, ephemeral.After(snap.Cursor))
	if ev := e.recvKind(r, ephemeral.EventUpsert, "c"); ev.Version != c.Version {
		e.Fatalf("event of c: version %d, want %d", ev.Version, c.Version)
	}
	if ev := e.recvKind(r, ephemeral.EventUpsert, "a"); ev.Version != a.Version {
		e.Fatalf("event of a: version %d, want %d", ev.Version, a.Version)
	}
	e.recvKind(r, ephemeral.EventDelete, "b")
	e.noEventBefore(s, r)
}

// testEmptyTenantCursor checks that the cursors of a tenant that has never been written stay
// valid through its first write: no overflow, no lost event.
func testEmptyTenantCursor(e *env) {
	s := e.store()
	snap := e.snapshot(s)
	if len(snap.Entries) != 0 {
		e.Fatalf("snapshot of a new tenant holds %+v", snap.Entries)
	}
	live := e.reader(s, ephemeral.WithTenant("other"))
	ent := e.upsert(s, "k", item{})
	e.upsert(s, "k", item{}, ephemeral.WithTenant("other"))
	r := e.reader(s, ephemeral.After(snap.Cursor))
	if ev := e.recvKind(r, ephemeral.EventUpsert, "k"); ev.Version != ent.Version {
		e.Fatalf("first event version %d, want %d", ev.Version, ent.Version)
	}
	e.recvKind(live, ephemeral.EventUpsert, "k")
}

// testSnapshotCursorConcurrent takes a snapshot while writers run, replays the events after its
// cursor onto it and expects the final snapshot: no change is lost or applied twice.
func testSnapshotCursorConcurrent(e *env) {
	s := e.store()
	const writers, ops = 4, 100
	half := make(chan struct{})
	var halfOnce sync.Once
	closeHalf := func() { halfOnce.Do(func() { close(half) }) }
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			if g == 0 {
				defer closeHalf() // also when it fails before half of its writes
			}
			for i := range ops {
				if g == 0 && i == ops/2 {
					closeHalf()
				}
				key := fmt.Sprint("k", (g*ops+i)%10)
				var err error
				switch i % 4 {
				case 0, 1:
					_, err = s.Upsert(e.ctx, key, item{N: i})
				case 2:
					_, err = s.Touch(e.ctx, key)
				case 3:
					_, err = s.Remove(e.ctx, key)
				}
				if err != nil {
					e.Errorf("writer %d op %d: %v", g, i, err)
					return
				}
			}
		})
	}
	<-half
	mid := e.snapshot(s)
	wg.Wait()
	final := e.snapshot(s)

	replica := make(map[string]ephemeral.Entry[string, item])
	for _, en := range mid.Entries {
		replica[en.Key] = en
	}
	end := e.cursor(final.Cursor).Seq
	if e.cursor(mid.Cursor).Seq < end {
		r := e.reader(s, ephemeral.After(mid.Cursor))
		for ev := e.recv(r); ; ev = e.recv(r) {
			apply(replica, ev)
			if ev.Version >= end {
				break
			}
		}
	}
	var got []ephemeral.Entry[string, item]
	for _, k := range slices.Sorted(maps.Keys(replica)) {
		got = append(got, replica[k])
	}
	if d := cmp.Diff(final.Entries, got); d != "" {
		e.Fatalf("snapshot plus events after its cursor differ from the final snapshot (-final +replayed):\n%s", d)
	}
}

// noValue reports whether ev, not an upsert, has none of an upsert's value and creation time.
func noValue(ev ephemeral.Event[string, item]) bool {
	return ev.Value == item{} && ev.CreatedAt.IsZero()
}

func apply(replica map[string]ephemeral.Entry[string, item], ev ephemeral.Event[string, item]) {
	switch ev.Kind {
	case ephemeral.EventUpsert:
		replica[ev.Key] = ev.Entry()
	case ephemeral.EventTouch:
		en := replica[ev.Key]
		en.Version, en.UpdatedAt, en.ExpiresAt = ev.Version, ev.At, ev.ExpiresAt
		replica[ev.Key] = en
	case ephemeral.EventDelete, ephemeral.EventExpire:
		delete(replica, ev.Key)
	}
}

func testQuietTouch(e *env) {
	s := e.store()
	ttl := e.shortTTL()
	if e.h.RealTime {
		// Margins of ttl/2 and 0.4*ttl for a loaded machine's scheduling and round trips.
		ttl = 2 * time.Second
	}
	ent := e.upsert(s, "k", item{}, ephemeral.WithTTL(ttl))
	r := e.reader(s)
	e.advance(ttl / 2)
	res := e.touch(s, "k", ephemeral.Quiet(), ephemeral.WithTTL(ttl))
	if !res.OK || res.Version != ent.Version || !res.ExpiresAt.After(ent.ExpiresAt) {
		e.Fatalf("quiet touch: %+v, want OK, version %d, expiry after %v", res, ent.Version, ent.ExpiresAt)
	}
	want := ent
	want.ExpiresAt = res.ExpiresAt
	e.mustGet(s, "k", want)
	e.advance(ttl/2 + ttl/10) // past the first expiry, before the second
	e.mustGet(s, "k", want)
	e.noEventBefore(s, r)
}

// testTouchMany checks that TouchMany touches each key as Touch would, in its order: a new
// version and event for each live key, OK false for a missing or an expired one, a repeated key
// touched twice; quietly, the expiries only. Its 73 keys take two script calls on Redis.
func testTouchMany(e *env) {
	s := e.store()
	ttl := e.shortTTL()
	var keys []string
	for i := range 70 {
		keys = append(keys, fmt.Sprintf("k%02d", i))
		e.upsert(s, keys[i], item{N: i})
	}
	e.upsert(s, "short", item{}, ephemeral.WithTTL(ttl))
	r := e.reader(s)
	e.advance(ttl)
	call := append(keys[:len(keys):len(keys)], "missing", "short", "k00")
	res, err := s.TouchMany(e.ctx, call, ephemeral.WithTTL(2*longTTL))
	if err != nil || len(res) != len(call) {
		e.Fatalf("TouchMany: %d results, %v; want %d", len(res), err, len(call))
	}
	e.recvKind(r, ephemeral.EventExpire, "short")
	var last uint64
	for i, k := range call {
		if k == "missing" || k == "short" {
			if res[i] != (ephemeral.TouchResult{}) {
				e.Fatalf("TouchMany: result %d, of %q: %+v, want OK false", i, k, res[i])
			}
			continue
		}
		if !res[i].OK || res[i].Version <= last {
			e.Fatalf("TouchMany: result %d, of %q: %+v, want OK and a version above %d", i, k, res[i], last)
		}
		last = res[i].Version
		ev := e.recvKind(r, ephemeral.EventTouch, k)
		if ev.Version != res[i].Version || !ev.ExpiresAt.Equal(res[i].ExpiresAt) {
			e.Fatalf("the touch event of %q: version %d, expiry %v; want %+v", k, ev.Version, ev.ExpiresAt, res[i])
		}
	}
	for i, k := range keys {
		j := i
		if k == "k00" {
			j = len(call) - 1
		}
		got, ok := e.get(s, k)
		if !ok || got.Version != res[j].Version || !got.ExpiresAt.Equal(res[j].ExpiresAt) || got.ExpiresAt.Sub(got.UpdatedAt) != 2*longTTL {
			e.Fatalf("Get(%q) after TouchMany: %+v, %v; want the version and expiry of %+v, updated 2h before", k, got, ok, res[j])
		}
	}

	before := e.snapshot(s)
	quiet, err := s.TouchMany(e.ctx, []string{"k01", "missing", "k02"}, ephemeral.Quiet(), ephemeral.WithTTL(3*longTTL))
	if err != nil || len(quiet) != 3 || quiet[1] != (ephemeral.TouchResult{}) {
		e.Fatalf("quiet TouchMany: %+v, %v", quiet, err)
	}
	for i, j := range []int{0, 2} {
		want := before.Entries[1+i] // k00 is first
		if want.Key != []string{"k01", "k02"}[i] {
			e.Fatalf("snapshot entry %d is %q", 1+i, want.Key)
		}
		if !quiet[j].OK || quiet[j].Version != want.Version || !quiet[j].ExpiresAt.After(want.ExpiresAt) {
			e.Fatalf("quiet TouchMany of %q: %+v, want OK, version %d, expiry after %v", want.Key, quiet[j], want.Version, want.ExpiresAt)
		}
		want.ExpiresAt = quiet[j].ExpiresAt
		e.mustGet(s, want.Key, want)
	}
	e.noEventBefore(s, r)
}

func testConditions(e *env) {
	s := e.store()
	v1 := e.upsert(s, "k", item{N: 1}, ephemeral.IfNew())
	e.writesNothing(s, func() {
		// conflict checks that err is a ConflictError that tells the key's state.
		conflict := func(what string, err error, key string, live bool) {
			e.Helper()
			e.wantErr(what, err, ephemeral.ErrConflict)
			var ce *ephemeral.ConflictError
			if !errors.As(err, &ce) {
				e.Fatalf("%s: error %v (%T) is not a *ConflictError", what, err, err)
			}
			want := &ephemeral.ConflictError{Key: key, Cond: ce.Cond, Live: live}
			if live {
				want.Version = v1.Version
			}
			if *ce != *want {
				e.Fatalf("%s: %+v, want %+v", what, *ce, *want)
			}
		}
		_, err := s.Upsert(e.ctx, "k", item{N: 2}, ephemeral.IfNew())
		conflict("Upsert IfNew of a live key", err, "k", true)
		_, err = s.Upsert(e.ctx, "missing", item{}, ephemeral.IfExists())
		conflict("Upsert IfExists of a missing key", err, "missing", false)
		_, err = s.Upsert(e.ctx, "k", item{N: 2}, ephemeral.IfVersion(v1.Version+1))
		conflict("Upsert IfVersion with another version", err, "k", true)
		_, err = s.Upsert(e.ctx, "missing", item{}, ephemeral.IfVersion(v1.Version))
		conflict("Upsert IfVersion of a missing key", err, "missing", false)
		_, err = s.Touch(e.ctx, "k", ephemeral.IfVersion(v1.Version+1))
		conflict("Touch IfVersion with another version", err, "k", true)
		_, err = s.Touch(e.ctx, "k", ephemeral.Quiet(), ephemeral.IfVersion(v1.Version+1))
		conflict("quiet Touch IfVersion with another version", err, "k", true)
		_, err = s.Touch(e.ctx, "missing", ephemeral.IfVersion(v1.Version))
		conflict("Touch IfVersion of a missing key", err, "missing", false)
		_, err = s.Remove(e.ctx, "k", ephemeral.IfVersion(v1.Version+1))
		conflict("Remove IfVersion with another version", err, "k", true)
		_, err = s.Remove(e.ctx, "missing", ephemeral.IfVersion(v1.Version))
		conflict("Remove IfVersion of a missing key", err, "missing", false)
	})
	e.mustGet(s, "k", v1)

	v2 := e.upsert(s, "k", item{N: 2}, ephemeral.IfExists())
	v3 := e.upsert(s, "k", item{N: 3}, ephemeral.IfVersion(v2.Version))
	quiet := e.touch(s, "k", ephemeral.Quiet(), ephemeral.IfVersion(v3.Version))
	tr := e.touch(s, "k", ephemeral.IfVersion(v3.Version))
	if !quiet.OK || !tr.OK || tr.Version <= v3.Version {
		e.Fatalf("touches IfVersion(%d): %+v then %+v", v3.Version, quiet, tr)
	}
	if !e.remove(s, "k", ephemeral.IfVersion(tr.Version)) {
		e.Fatal("Remove IfVersion of the live version = false")
	}
	e.upsert(s, "k", item{}, ephemeral.IfNew())

	ttl := e.shortTTL()
	e.upsert(s, "x", item{}, ephemeral.WithTTL(ttl))
	e.advance(ttl)
	_, err := s.Upsert(e.ctx, "x", item{}, ephemeral.IfExists())
	e.wantErr("Upsert IfExists of an expired key", err, ephemeral.ErrConflict)
	e.upsert(s, "x", item{}, ephemeral.IfNew())
}

func testExpiry(e *env) {
	s := e.store()
	r := e.reader(s)
	ttl := e.shortTTL()
	ent := e.upsert(s, "k", item{}, ephemeral.WithTTL(ttl))
	e.recvKind(r, ephemeral.EventUpsert, "k")
	e.advance(ttl)
	ev := e.recvKind(r, ephemeral.EventExpire, "k") // nothing else happens in the tenant
	if ev.Version <= ent.Version || ev.At.Before(ent.ExpiresAt) || !noValue(ev) {
		e.Fatalf("expire event %+v, want version > %d, At not before %v, no value", ev, ent.Version, ent.ExpiresAt)
	}
	e.mustMiss(s, "k")
	if snap := e.snapshot(s); len(snap.Entries) != 0 {
		e.Fatalf("snapshot after the expiry holds %+v", snap.Entries)
	}
	e.advance(10 * time.Millisecond)
	again := e.upsert(s, "k", item{})
	if again.Version <= ev.Version || !again.CreatedAt.After(ent.CreatedAt) {
		e.Fatalf("upsert after expiry: %+v, want version > %d, created after %v", again, ev.Version, ent.CreatedAt)
	}
}

func testMassExpiry(e *env) {
	const n = 1000
	s := e.store()
	ttl := e.shortTTL()
	// The reader starts before the writes: on a slow real server the first keys may expire
	// before the last is written, and their expire events must not be missed.
	r := e.reader(s)
	for i := range n {
		e.upsert(s, fmt.Sprint("k", i), item{N: i}, ephemeral.WithTTL(ttl))
	}
	e.advance(ttl)
	written := make(map[string]bool, n)
	expired := make(map[string]bool, n)
	var last uint64
	for len(expired) < n {
		ev := e.recv(r)
		ok := ev.Version > last
		switch ev.Kind {
		case ephemeral.EventUpsert:
			ok = ok && !written[ev.Key]
			written[ev.Key] = true
		case ephemeral.EventExpire:
			ok = ok && written[ev.Key] && !expired[ev.Key]
			expired[ev.Key] = true
		default:
			ok = false
		}
		if !ok {
			e.Fatalf("after %d upserts and %d expires: %v of %q version %d, want an upsert of a new key or the expire of a written one, after version %d",
				len(written), len(expired), ev.Kind, ev.Key, ev.Version, last)
		}
		last = ev.Version
	}
	if snap := e.snapshot(s); len(snap.Entries) != 0 {
		e.Fatalf("snapshot after the expiry holds %d entries", len(snap.Entries))
	}
}

func testEventFields(e *env) {
	s := e.store()
	r := e.reader(s)
	ent := e.upsert(s, "k", item{Name: "v", N: 7}, ephemeral.WithTTL(time.Minute))
	up := e.recvKind(r, ephemeral.EventUpsert, "k")
	if up.Version != ent.Version || !up.At.Equal(ent.UpdatedAt) || e.cursor(up.Cursor).Seq != ent.Version {
		e.Fatalf("upsert event %+v, want version %d at %v", up, ent.Version, ent.UpdatedAt)
	}
	if d := cmp.Diff(ent, up.Entry()); d != "" {
		e.Fatalf("upsert event entry (-want +got):\n%s", d)
	}

	e.advance(5 * time.Millisecond)
	tr := e.touch(s, "k", ephemeral.WithTTL(2*time.Minute))
	touch := e.recvKind(r, ephemeral.EventTouch, "k")
	if touch.Version != tr.Version || !touch.ExpiresAt.Equal(tr.ExpiresAt) || !noValue(touch) ||
		!touch.At.After(up.At) || touch.ExpiresAt.Sub(touch.At) != 2*time.Minute {
		e.Fatalf("touch event %+v, want version %d, expiry %v = At + 2m, no value", touch, tr.Version, tr.ExpiresAt)
	}

	e.remove(s, "k", ephemeral.WithReason("bye"))
	del := e.recvKind(r, ephemeral.EventDelete, "k")
	if del.Reason != "bye" || del.Version <= touch.Version || !noValue(del) {
		e.Fatalf("delete event %+v, want reason bye, version > %d", del, touch.Version)
	}
	e.upsert(s, "k2", item{})
	e.remove(s, "k2")
	e.recvKind(r, ephemeral.EventUpsert, "k2")
	if ev := e.recvKind(r, ephemeral.EventDelete, "k2"); ev.Reason != "" {
		e.Fatalf("delete without a reason has reason %q", ev.Reason)
	}
	if r.Cursor() != e.snapshot(s).Cursor {
		e.Fatalf("reader cursor %s after the last event, want the snapshot's %s", r.Cursor(), e.snapshot(s).Cursor)
	}

	// Each event's cursor resumes right after it.
	for _, tc := range []struct {
		after ephemeral.Event[string, item]
		next  ephemeral.EventKind
	}{{up, ephemeral.EventTouch}, {touch, ephemeral.EventDelete}} {
		resumed := e.reader(s, ephemeral.After(tc.after.Cursor))
		e.recvKind(resumed, tc.next, "k")
	}
}

// testBackendClose: closing the backend ends its readers, blocked or not, and fails later
// calls with ErrClosed; a second Close does nothing.
func testBackendClose(e *env) {
	s := e.store()
	e.upsert(s, "a", item{Name: "a"})
	blocked, idle := e.reader(s), e.reader(s)
	e.closeEnds(blocked, "the backend's Close", e.h.Backend.Close)
	_, err := idle.Recv(e.ctx)
	e.wantErr("Recv after the backend's Close", err, ephemeral.ErrClosed)
	_, err = s.Upsert(e.ctx, "b", item{Name: "b"})
	e.wantErr("Upsert after the backend's Close", err, ephemeral.ErrClosed)
	_, err = s.Touch(e.ctx, "a")
	e.wantErr("Touch after the backend's Close", err, ephemeral.ErrClosed)
	_, err = s.TouchMany(e.ctx, []string{"a"})
	e.wantErr("TouchMany after the backend's Close", err, ephemeral.ErrClosed)
	_, err = s.Remove(e.ctx, "a")
	e.wantErr("Remove after the backend's Close", err, ephemeral.ErrClosed)
	_, _, err = s.Get(e.ctx, "a")
	e.wantErr("Get after the backend's Close", err, ephemeral.ErrClosed)
	_, err = s.Snapshot(e.ctx)
	e.wantErr("Snapshot after the backend's Close", err, ephemeral.ErrClosed)
	_, err = s.Reader(e.ctx)
	e.wantErr("Reader after the backend's Close", err, ephemeral.ErrClosed)
	if err := e.h.Backend.Close(); err != nil {
		e.Fatalf("second Close: %v", err)
	}
}

func testReaderClose(e *env) {
	s := e.store()
	r := e.reader(s)
	e.closeEnds(r, "Close", r.Close)
	_, err := r.Recv(e.ctx)
	e.wantErr("Recv after Close", err, ephemeral.ErrClosed)
	if err := r.Close(); err != nil {
		e.Fatalf("second Close: %v", err)
	}

	r2 := e.reader(s)
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	_, err = r2.Recv(ctx)
	e.wantErr("Recv with a canceled context", err, context.Canceled)
	e.noEventBefore(s, r2)
}

func testEventsIterator(e *env) {
	s := e.store()
	r := e.reader(s)
	want := []string{"k0", "k1", "k2"}
	for _, k := range want {
		e.upsert(s, k, item{})
	}
	ctx, cancel := context.WithTimeout(e.ctx, waitFor)
	defer cancel()
	var got []string
	for ev, err := range r.Events(ctx) {
		if err != nil {
			e.Fatalf("Events: %v after %q", err, got)
		}
		got = append(got, ev.Key)
		if len(got) == len(want) {
			break
		}
	}
	if !slices.Equal(got, want) {
		e.Fatalf("Events yielded %q, want %q", got, want)
	}

	canceled, cancel2 := context.WithCancel(e.ctx)
	cancel2()
	n := 0
	for _, err := range r.Events(canceled) {
		n++
		e.wantErr("Events with a canceled context", err, context.Canceled)
	}
	if n != 1 {
		e.Fatalf("Events with a canceled context yielded %d times, want 1", n)
	}
}

// testTryRecv checks that TryRecv returns the events that are ready, in order, and reports
// none ready without waiting, and that a closed reader's TryRecv fails with ErrClosed.
func testTryRecv(e *env) {
	s := e.store()
	r := e.reader(s)
	if ev, ok, err := r.TryRecv(); ok || err != nil {
		e.Fatalf("TryRecv with no event = %+v, %v, %v; want not ok", ev, ok, err)
	}
	e.upsert(s, "k0", item{})
	e.upsert(s, "k1", item{})
	// The events reach the process in their own time (from Redis, after the writes return):
	// poll until the first is ready. Recv of the same reader would wait for it.
	var got []string
	for deadline := time.Now().Add(waitFor); len(got) < 2; {
		ev, ok, err := r.TryRecv()
		switch {
		case err != nil:
			e.Fatalf("TryRecv: %v after %q", err, got)
		case ok:
			got = append(got, ev.Key)
		case time.Now().After(deadline):
			e.Fatalf("TryRecv: no event ready after %v, got %q", waitFor, got)
		default:
			time.Sleep(time.Millisecond)
		}
	}
	if !slices.Equal(got, []string{"k0", "k1"}) {
		e.Fatalf("TryRecv returned %q, want k0 then k1", got)
	}
	if ev, ok, err := r.TryRecv(); ok || err != nil {
		e.Fatalf("TryRecv after the last event = %+v, %v, %v; want not ok", ev, ok, err)
	}
	r.Close()
	if _, ok, err := r.TryRecv(); !ok {
		e.Fatalf("TryRecv of a closed reader: not ok, want ErrClosed")
	} else {
		e.wantErr("TryRecv of a closed reader", err, ephemeral.ErrClosed)
	}
}

// testConcurrent runs writers in parallel on the keys keyOf gives, each upserting, touching and
// touching four keys at once, and checks that every write got its own version (a TouchMany's
// consecutive ones: it is atomic) and that one reader receives every event, in version order.
func testConcurrent(e *env, keyOf func(g, i int) string) {
	s := e.store()
	r := e.reader(s)
	const writers, ops = 8, 200
	versions := make([][]uint64, writers)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range ops {
				key := keyOf(g, i)
				ent, err := s.Upsert(e.ctx, key, item{N: g*ops + i})
				if err != nil {
					e.Errorf("writer %d: Upsert: %v", g, err)
					return
				}
				versions[g] = append(versions[g], ent.Version)
				if i%4 != 3 {
					continue
				}
				res, err := s.Touch(e.ctx, key)
				if err != nil || !res.OK {
					e.Errorf("writer %d: Touch = %+v, %v", g, res, err)
					return
				}
				versions[g] = append(versions[g], res.Version)
				if i%8 != 7 {
					continue
				}
				keys := []string{keyOf(g, i-3), keyOf(g, i-2), keyOf(g, i-1), key}
				many, err := s.TouchMany(e.ctx, keys)
				if err != nil {
					e.Errorf("writer %d: TouchMany: %v", g, err)
					return
				}
				for j, res := range many {
					// Consecutive: up to 64 keys are touched at once, no other write between.
					if !res.OK || (j > 0 && res.Version != many[j-1].Version+1) {
						e.Errorf("writer %d: TouchMany of %q = %+v: want each OK, in the order of the keys, at consecutive versions", g, keys, many)
						return
					}
					versions[g] = append(versions[g], res.Version)
				}
			}
		})
	}
	wg.Wait()
	if e.Failed() {
		return
	}
	written := slices.Concat(versions...)
	slices.Sort(written)
	if d := slices.Compact(slices.Clone(written)); len(d) != len(written) {
		e.Fatalf("%d writes got only %d distinct versions", len(written), len(d))
	}
	received := make([]uint64, 0, len(written))
	for range written {
		ev := e.recv(r)
		if n := len(received); n > 0 && ev.Version <= received[n-1] {
			e.Fatalf("event version %d after %d", ev.Version, received[n-1])
		}
		received = append(received, ev.Version)
	}
	if !slices.Equal(received, written) {
		e.Fatalf("the reader received versions other than those written:\nwritten  %v\nreceived %v", written, received)
	}
}

// Every entry carries the epoch of its version, the epoch of the tenant's cursors, and IfCursor
// guards a write by both.
func testCursorConditions(e *env) {
	s := e.store()
	a := e.upsert(s, "a", item{N: 1})
	snap := e.snapshot(s)
	c := e.cursor(snap.Cursor)
	got, _ := e.get(s, "a")
	if a.Epoch != c.Epoch || got.Epoch != c.Epoch || len(snap.Entries) != 1 || snap.Entries[0].Epoch != c.Epoch {
		e.Fatalf("epochs: upsert %q, get %q, snapshot %+v; want the cursor's %q", a.Epoch, got.Epoch, snap.Entries, c.Epoch)
	}
	token := backend.Cursor{Epoch: a.Epoch, Seq: a.Version}.String()
	other := backend.Cursor{Epoch: a.Epoch + "x", Seq: a.Version}.String()
	var ce *ephemeral.ConflictError
	if _, err := s.Touch(e.ctx, "a", ephemeral.IfCursor(other)); !errors.As(err, &ce) || !ce.Live || ce.Version != a.Version || ce.Epoch != a.Epoch {
		e.Fatalf("Touch if %s: %v, want a ConflictError at version %d of epoch %s", other, err, a.Version, a.Epoch)
	}
	if ok, err := s.Remove(e.ctx, "a", ephemeral.IfCursor(other)); ok || !errors.Is(err, ephemeral.ErrConflict) {
		e.Fatalf("Remove if %s: %v, %v; want ErrConflict", other, ok, err)
	}
	if _, err := s.Upsert(e.ctx, "a", item{}, ephemeral.IfCursor(other)); !errors.Is(err, ephemeral.ErrConflict) {
		e.Fatalf("Upsert if %s: %v, want ErrConflict", other, err)
	}
	if res := e.touch(s, "a", ephemeral.IfCursor(token), ephemeral.Quiet()); !res.OK || res.Version != a.Version {
		e.Fatalf("quiet Touch if %s: %+v", token, res)
	}
	if !e.remove(s, "a", ephemeral.IfCursor(token)) {
		e.Fatalf("Remove if %s: not live", token)
	}
	if _, err := s.Remove(e.ctx, "a", ephemeral.IfCursor(token)); !errors.As(err, &ce) || ce.Live {
		e.Fatalf("second Remove if %s: %v, want a ConflictError, not live", token, err)
	}
	for _, bad := range []string{"", "x", "-1", a.Epoch + "-01"} {
		if _, err := s.Touch(e.ctx, "a", ephemeral.IfCursor(bad)); !errors.Is(err, ephemeral.ErrInvalidCursor) {
			e.Errorf("Touch if %q: %v, want ErrInvalidCursor", bad, err)
		}
	}
	if _, err := s.Touch(e.ctx, "a", ephemeral.IfCursor(token), ephemeral.IfVersion(1)); !errors.Is(err, ephemeral.ErrInvalidConfig) {
		e.Errorf("Touch with two conditions: %v, want ErrInvalidConfig", err)
	}
}

// A tenant whose every key expired and whose events ran out of retention is made anew under a
// new epoch, and the new epoch sorts after the old one: (epoch, version) keeps increasing.
func testEpochOrder(e *env) {
	retention := 100 * time.Millisecond
	if e.h.RealTime {
		retention = 200 * time.Millisecond
	}
	s := e.store(ephemeral.WithLimits(ephemeral.Limits{EventRetention: retention}))
	ttl := e.shortTTL()
	first := e.upsert(s, "a", item{}, ephemeral.WithTTL(ttl))
	var next ephemeral.Entry[string, item]
	for i := 0; ; i++ {
		e.advance(ttl)
		e.advance(3 * retention)
		next = e.upsert(s, "a", item{}, ephemeral.WithTTL(ttl))
		if next.Epoch != first.Epoch || i == 10 {
			break
		}
		first = next
	}
	if next.Epoch <= first.Epoch || next.Version != 1 {
		e.Fatalf("after a full expiry: epoch %q version %d, before: epoch %q version %d; want a later epoch at version 1",
			next.Epoch, next.Version, first.Epoch, first.Version)
	}
	t1, ok1 := backend.EpochTime(first.Epoch)
	t2, ok2 := backend.EpochTime(next.Epoch)
	if !ok1 || !ok2 || !t2.After(t1) {
		e.Fatalf("epoch times %v (%v) and %v (%v), want ordered", t1, ok1, t2, ok2)
	}
}
