package redisstore

import (
	"context"
	"fmt"
	"hash/maphash"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/internal/codectest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"pgregory.net/rapid"
)

// countingPresence is the presence codec, counting its decodes.
type countingPresence struct {
	codectest.PresenceCodec
	decodes *atomic.Int64
}

func (c countingPresence) Decode(src []byte, v *codectest.Presence) error {
	c.decodes.Add(1)
	return c.PresenceCodec.Decode(src, v)
}

// TestSnapshotMemosMiniredis checks that typed snapshots decode a value at the first snapshot
// that reads it and at the second, which makes its memo, and no more while its bytes stay (a
// touch keeps them, an upsert of other bytes does not), that a snapshot of a prefix
// uses the memos kept and keeps none, that a whole snapshot drops the memos of keys gone and a
// new epoch all of them, that a store keeps at most its maxKept, and that a tenant whose slot
// another tenant takes gives its memos back; and that an entry rewritten with another value of
// the same version is decoded anew.
func TestSnapshotMemosMiniredis(t *testing.T) {
	ctx := context.Background()
	f := newMini(t)
	var decodes atomic.Int64
	s, err := ephemeral.New(f.b, ephemeral.Config[string, codectest.Presence]{ID: "memos", TTL: time.Hour, Codec: countingPresence{decodes: &decodes}})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := f.b.Open("memos", backend.Limits{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	st := raw.(*store)
	value := func(user string) codectest.Presence {
		return codectest.Presence{Room: "r", UserID: user, Status: "online", Since: time.Unix(1, 0).UTC(), Tabs: []string{"chat"}}
	}
	upsert := func(key, user string, opts ...ephemeral.UpsertOption) {
		t.Helper()
		if _, err := s.Upsert(ctx, key, value(user), opts...); err != nil {
			t.Fatal(err)
		}
	}
	// expect takes a snapshot (of the tenant, or with opts) and checks its values, the
	// decodes it made and the values the store keeps.
	expect := func(what string, users map[string]string, newDecodes, kept int64, opts ...ephemeral.SnapshotOption) {
		t.Helper()
		before := decodes.Load()
		snap, err := s.Snapshot(ctx, opts...)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(snap.Entries) != len(users) {
			t.Fatalf("%s: %d entries, want %d", what, len(snap.Entries), len(users))
		}
		for _, e := range snap.Entries {
			if e.Value.UserID != users[e.Key] || len(e.Value.Tabs) != 1 {
				t.Fatalf("%s: %s = %+v, want user %q", what, e.Key, e.Value, users[e.Key])
			}
			e.Value.Tabs[0] = "scribbled" // never seen by the next snapshot
		}
		if d := decodes.Load() - before; d != newDecodes {
			t.Errorf("%s: %d decodes, want %d", what, d, newDecodes)
		}
		if n := st.kept.Load(); n != kept {
			t.Errorf("%s: the store keeps %d values, want %d", what, n, kept)
		}
	}

	upsert("a", "ann")
	upsert("b", "bob")
	both := map[string]string{"a": "ann", "b": "bob"}
	expect("first snapshot", both, 2, 2)  // no memos yet: values read once are decoded once
	expect("second snapshot", both, 2, 2) // memos now, their values decoded into them
	expect("third snapshot", both, 0, 2)
	if _, err := s.Touch(ctx, "a"); err != nil { // a new version, the same bytes
		t.Fatal(err)
	}
	upsert("b", "bob") // the same bytes again
	expect("after a touch and an upsert of the same bytes", both, 0, 2)
	upsert("a", "amy")
	both = map[string]string{"a": "amy", "b": "bob"}
	expect("after an upsert of other bytes", both, 1, 2)
	expect("after an upsert of other bytes, again", both, 1, 2)
	upsert("c", "cat")
	expect("a prefix snapshot of a new key", map[string]string{"c": "cat"}, 1, 2, ephemeral.WithPrefix("c"))
	expect("a prefix snapshot of a key kept", map[string]string{"b": "bob"}, 0, 2, ephemeral.WithPrefix("b"))
	if _, err := s.Remove(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	ac := map[string]string{"a": "amy", "c": "cat"}
	expect("a snapshot after a remove", ac, 1, 2)
	expect("a snapshot after a remove, again", ac, 1, 2)
	expect("a snapshot after a remove, a third time", ac, 0, 2)

	// A new epoch: the tenant's keys are gone (as after an eviction), and written again.
	f.mini.FlushAll()
	upsert("a", "amy")
	expect("a snapshot of a new epoch", map[string]string{"a": "amy"}, 1, 1)

	// At most maxKept values kept: the entries beyond are decoded at every snapshot.
	st.maxKept = 2
	upsert("d", "dan")
	upsert("e", "eve")
	all := map[string]string{"a": "amy", "d": "dan", "e": "eve"}
	expect("a snapshot beyond maxKept", all, 3, 2)
	expect("a snapshot beyond maxKept, again", all, 2, 2)
	expect("a snapshot beyond maxKept, a third time", all, 1, 2)
	st.maxKept = maxKept

	// Another tenant that takes the tenant's slot: the memos go with the slot.
	other := otherSlotTenant(t, ephemeral.DefaultTenant)
	upsert("x", "xia", ephemeral.WithTenant(other))
	expect("a snapshot of a tenant that took the slot", map[string]string{"x": "xia"}, 1, 1, ephemeral.WithTenant(other))
	expect("a snapshot of the tenant that lost its slot", all, 3, 3)
	expect("a snapshot of the tenant that lost its slot, again", all, 3, 3)
	expect("a snapshot of the tenant that lost its slot, a third time", all, 0, 3)

	// Another program rewrites d's entry, keeping its version: a value of another length is
	// decoded anew, not taken for the one of the memo.
	field, state := entryPrefix+"d", st.keys(ephemeral.DefaultTenant)[keyState]
	parts := strings.SplitN(f.mini.HGet(state, field), "|", 5)
	v := value("daniela")
	enc, err := (codectest.PresenceCodec{}).Encode(nil, &v)
	if err != nil {
		t.Fatal(err)
	}
	f.mini.HSet(state, field, strings.Join(parts[:4], "|")+"|"+string(enc))
	all["d"] = "daniela"
	expect("a snapshot after a rewrite that kept the version", all, 1, 3)
	expect("a snapshot after a rewrite that kept the version, again", all, 1, 3)
	expect("a snapshot after a rewrite that kept the version, a third time", all, 0, 3)

	// A server gone back to older data (an older RDB file, a replica promoted that missed the
	// last writes) keeps the epoch and gives versions over again: bytes of the same length at
	// the version of the memo are other bytes all the same.
	v = value("danielb")
	if enc, err = (codectest.PresenceCodec{}).Encode(nil, &v); err != nil {
		t.Fatal(err)
	}
	f.mini.HSet(state, field, strings.Join(parts[:4], "|")+"|"+string(enc))
	all["d"] = "danielb"
	expect("a snapshot after a rewrite of the same length that kept the version", all, 1, 3)
}

// otherSlotTenant returns a tenant name whose tenantSlot is the one of tenant.
func otherSlotTenant(t *testing.T, tenant string) string {
	want := maphash.String(slotSeed, tenant) % tenantSlots
	for i := range 1 << 24 {
		if name := fmt.Sprint("t", i); maphash.String(slotSeed, name)%tenantSlots == want {
			return name
		}
	}
	t.Fatal("no tenant of the same slot")
	return ""
}

// TestKeepValuesProperties runs random histories of a tenant (upserts of a few values,
// touches, removes, new epochs) through keepValues, with snapshots of the whole tenant and of
// prefixes whose values are slices of one reply buffer, and checks after each snapshot that
// no value aliases the reply (scribbled after the call) and every value handed out so far
// still has its bytes; that a memo only ever goes with one value's bytes; that an entry whose
// bytes the last whole snapshot also read gets that snapshot's memo, and one in any case when
// both snapshots fit in maxKept; and that the store's count is the refs kept, sorted by key,
// at most maxKept.
func TestKeepValuesProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		st := &store{maxKept: int64(rapid.IntRange(0, 6).Draw(t, "maxKept"))}
		slot := st.slot("t")
		type value struct {
			bytes   string
			version uint64
		}
		model := map[string]value{}
		version, epoch := uint64(0), "e0"
		bytesOf := map[*backend.Memo]string{}
		lastWhole := map[string]*backend.Entry{}
		lastFits := true // the last whole snapshot kept every entry's bytes
		type handed struct {
			value []byte
			bytes string
		}
		var out []handed // every value handed out, with its bytes
		keys := []string{"a", "a1", "a2", "b", "b1", "c"}
		for step := range rapid.IntRange(1, 60).Draw(t, "steps") {
			key := rapid.SampledFrom(keys).Draw(t, "key")
			switch op := rapid.IntRange(0, 6).Draw(t, "op"); op {
			case 0, 1: // upsert
				version++
				model[key] = value{rapid.SampledFrom([]string{"x", "y", "zz", ""}).Draw(t, "bytes"), version}
			case 2: // touch
				if v, ok := model[key]; ok {
					version++
					model[key] = value{v.bytes, version}
				}
			case 3: // remove
				delete(model, key)
			case 6: // Redis went back to older data in the epoch, whose next write reused a version: other bytes of the same length
				if v, ok := model[key]; ok && v.bytes != "" {
					other := map[string]string{"x": "y", "y": "x", "zz": "zx"}[v.bytes]
					model[key] = value{other, v.version}
				}
			case 4: // a new epoch, written anew
				if rapid.IntRange(0, 3).Draw(t, "epoch") == 0 {
					epoch, version, model, bytesOf, lastWhole = fmt.Sprint("e", step), 1, map[string]value{key: {"x", 1}}, map[*backend.Memo]string{}, map[string]*backend.Entry{}
				}
			}
			prefix := ""
			if rapid.Bool().Draw(t, "prefix") {
				prefix = rapid.SampledFrom([]string{"a", "a1", "b", "d"}).Draw(t, "of")
			}
			var entries []backend.Entry
			var reply []byte
			for _, k := range keys { // sorted
				if v, ok := model[k]; ok && strings.HasPrefix(k, prefix) {
					entries = append(entries, backend.Entry{Key: k, Value: []byte(v.bytes), Version: v.version, Epoch: epoch})
					reply = append(reply, v.bytes...)
				}
			}
			for i, off := 0, 0; i < len(entries); i++ { // the values as parseSnapshot makes them
				end := off + len(entries[i].Value)
				entries[i].Value, off = reply[off:end:end], end
			}
			st.keepValues(slot, epoch, entries, prefix == "")
			for i := range reply {
				reply[i] = '#'
			}
			for i := range entries {
				e := &entries[i]
				if want := model[e.Key].bytes; string(e.Value) != want || e.Value == nil {
					t.Fatalf("step %d: %s: value %q after the reply was scribbled, want %q", step, e.Key, e.Value, want)
				}
				out = append(out, handed{e.Value, string(e.Value)})
			}
			for _, h := range out {
				if string(h.value) != h.bytes {
					t.Fatalf("step %d: a value handed out as %q is now %q", step, h.bytes, h.value)
				}
			}
			for i := range entries {
				e := &entries[i]
				if e.Memo == nil {
					continue
				}
				if b, ok := bytesOf[e.Memo]; ok && b != string(e.Value) {
					t.Fatalf("step %d: %s: the memo of %q handed out with %q", step, e.Key, b, e.Value)
				}
				bytesOf[e.Memo] = string(e.Value)
				if w := lastWhole[e.Key]; w != nil && w.Memo != nil && string(w.Value) == string(e.Value) && w.Memo != e.Memo {
					t.Fatalf("step %d: %s: a new memo for the bytes %q of the last whole snapshot", step, e.Key, e.Value)
				}
			}
			c := slot.memos.Load()
			if prefix == "" {
				fits := int64(len(entries)) <= st.maxKept && lastFits
				for i := range entries {
					e := &entries[i]
					if w := lastWhole[e.Key]; fits && w != nil && string(w.Value) == string(e.Value) && e.Memo == nil {
						t.Fatalf("step %d: %s has no memo in the second whole snapshot of its bytes %q", step, e.Key, e.Value)
					}
				}
				clear(lastWhole)
				for i := range entries {
					lastWhole[entries[i].Key] = &entries[i]
				}
				lastFits = int64(len(entries)) <= st.maxKept
			}
			if n := st.kept.Load(); n != int64(len(c.refs)) || n > st.maxKept {
				t.Fatalf("step %d: the store counts %d values kept, the cache has %d, at most %d", step, n, len(c.refs), st.maxKept)
			}
			for i := 1; i < len(c.refs); i++ {
				if c.refs[i-1].key >= c.refs[i].key {
					t.Fatalf("step %d: refs not sorted: %q before %q", step, c.refs[i-1].key, c.refs[i].key)
				}
			}
		}
	})
}

// BenchmarkKeepValues measures keepValues on a whole snapshot of 10,000 unchanged entries, the
// cost it adds to every snapshot of the Redis backend.
//
//	go test -run '^$' -bench KeepValues ./runtime/redisstore
func BenchmarkKeepValues(b *testing.B) {
	st := &store{maxKept: maxKept}
	slot := st.slot("t")
	entries := make([]backend.Entry, 10_000)
	for i := range entries {
		entries[i] = backend.Entry{Key: fmt.Sprintf("user-%05d", i), Value: []byte("12345678"), Version: uint64(i + 1)}
	}
	st.keepValues(slot, "e", entries, true)
	b.ResetTimer()
	for b.Loop() {
		st.keepValues(slot, "e", entries, true)
	}
}
