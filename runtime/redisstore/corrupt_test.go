package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
)

// junkValues are malformed values of a number or an epoch: empty, not a number, negative, out
// of range, too many digits, not decimal, binary.
// (9007199254740992 and 9007199254740993 have 16 digits, but are past what a Lua number holds
// exactly: as a version, the next would repeat the one before or go back.)
var junkValues = []string{"", "x", "-1", "1e400", "1.5", " 7", "0x10", "inf", "nan", "99999999999999999999", "\xff\x00|", strings.Repeat("9", 200),
	"9007199254740992", "9007199254740993", "9999999999999999"}

// corruption is junk written into one kind of key of a tenant, and its removal by an operator.
type corruption struct {
	name string
	// bad is the key whose writes and Get must fail with ErrCorrupt: "*" for every key, "" for
	// none (the others must succeed).
	bad    string
	apply  func(ctx context.Context, c redis.UniversalClient, keys []string) error
	repair func(ctx context.Context, c redis.UniversalClient, keys []string) error
	// snapshotFails says whether Snapshot must fail with ErrCorrupt while the junk is there;
	// readFails, whether a reader must get ErrCorrupt.
	snapshotFails, readFails bool
}

// corruptions returns the corruptions of a tenant whose meta holds epoch and version seq: each
// kind of its keys, with each of junkValues where a value is junk.
func corruptions(epoch string, seq uint64) []corruption {
	var cs []corruption
	hset := func(field, value string) func(context.Context, redis.UniversalClient, []string) error {
		return func(ctx context.Context, c redis.UniversalClient, keys []string) error {
			return c.HSet(ctx, keys[keyState], field, value).Err()
		}
	}
	hdel := func(field string) func(context.Context, redis.UniversalClient, []string) error {
		return func(ctx context.Context, c redis.UniversalClient, keys []string) error {
			return c.HDel(ctx, keys[keyState], field).Err()
		}
	}
	for _, v := range junkValues {
		cs = append(cs,
			corruption{name: "seq=" + v, bad: "*", apply: hset(metaSeq, v), repair: hset(metaSeq, strconv.FormatUint(seq, 10)), snapshotFails: true, readFails: true},
			corruption{name: "entry=" + v, bad: "a", apply: hset(entryPrefix+"a", v), repair: hdel(entryPrefix + "a"), snapshotFails: true},
		)
	}
	// An epoch of letters and digits is valid, whatever it says: a new epoch.
	for _, v := range []string{"", "-1", "1.5", " 7", "\xff\x00|", "épo", strings.Repeat("e", backend.MaxEpochBytes+1)} {
		cs = append(cs, corruption{name: "epoch=" + v, bad: "*", apply: hset(metaEpoch, v), repair: hset(metaEpoch, epoch), snapshotFails: true, readFails: true})
	}
	for _, v := range []string{"1|2|3", "1|2|3|x|v", "-1|1|1|99999999999999|v", "1|1|1|1e400|v", "12345678901234567|1|1|99999999999999|v"} {
		cs = append(cs, corruption{name: "entry=" + v, bad: "a", apply: hset(entryPrefix+"a", v), repair: hdel(entryPrefix + "a"), snapshotFails: true})
	}
	for _, name := range []string{metaDue, metaTrim, metaKexp} {
		cs = append(cs, corruption{name: name + "=x", bad: "*", apply: hset(name, "x"), repair: hdel(name), readFails: true})
	}
	// A member of the expiry set with a score no expiry has: once it is due (#due says when the
	// scripts look), it fails every write.
	for _, score := range []float64{-1, 1.5, math.Inf(-1)} {
		cs = append(cs, corruption{
			name: fmt.Sprintf("exp member score %v", score),
			bad:  "*",
			apply: func(ctx context.Context, c redis.UniversalClient, keys []string) error {
				// In this order: a tick between the two would set #due anew.
				if err := c.ZAdd(ctx, keys[keyExp], redis.Z{Score: score, Member: "junk\n\x00"}).Err(); err != nil {
					return err
				}
				return c.HSet(ctx, keys[keyState], metaDue, "0").Err()
			},
			repair: func(ctx context.Context, c redis.UniversalClient, keys []string) error {
				return c.ZRem(ctx, keys[keyExp], "junk\n\x00").Err()
			},
		})
	}
	// Junk in the events stream. An entry between two versions: passed. The event of the last
	// version made unreadable (the stream rewritten with junk in its place): readers get an
	// overflow past it. An entry ahead of the version (XADD with an automatic ID): writes fail
	// until the stream is deleted.
	xadd := func(id string) func(context.Context, redis.UniversalClient, []string) error {
		return func(ctx context.Context, c redis.UniversalClient, keys []string) error {
			return c.XAdd(ctx, &redis.XAddArgs{Stream: keys[keyEvents], ID: id, Values: []any{"junk", "\xff"}}).Err()
		}
	}
	nothing := func(context.Context, redis.UniversalClient, []string) error { return nil }
	cs = append(cs,
		corruption{name: "stream entry between versions", apply: xadd(fmt.Sprintf("%d-1", seq)), repair: nothing},
		// The next version's event unreadable, as the pump reads it.
		corruption{name: "stream entry of the next version", apply: func(ctx context.Context, c redis.UniversalClient, keys []string) error {
			if err := xadd(fmt.Sprintf("%d-0", seq+1))(ctx, c, keys); err != nil {
				return err
			}
			return c.HSet(ctx, keys[keyState], metaSeq, seq+1).Err()
		}, repair: nothing},
		corruption{name: "stream entry ahead", bad: "*", apply: xadd("*"), repair: func(ctx context.Context, c redis.UniversalClient, keys []string) error {
			return c.Del(ctx, keys[keyEvents]).Err()
		}},
	)
	// A key of the wrong type.
	for _, k := range []int{keyState, keyExp, keyEvents} {
		cs = append(cs, corruption{
			name: keySuffixes[k] + " key of the wrong type", bad: "*", snapshotFails: k == keyState, readFails: k != keyExp,
			apply: func(ctx context.Context, c redis.UniversalClient, keys []string) error {
				ttl := c.PTTL(ctx, keys[k]).Val()
				return c.Set(ctx, keys[k], "junk", ttl).Err()
			},
			repair: func(ctx context.Context, c redis.UniversalClient, keys []string) error {
				return c.Del(ctx, keys[k]).Err()
			},
		})
	}
	for _, fields := range [][]any{{"junk", "1"}, {fieldEpoch, epoch, fieldAt, "1", fieldEvents, " ? 1:a 0 0 0:"}, {fieldEpoch, "other", fieldAt, "1", fieldEvents, " d 1:a 0 0 0:"}} {
		cs = append(cs, corruption{name: fmt.Sprintf("stream entry %d unreadable %q", seq, fields), apply: func(ctx context.Context, c redis.UniversalClient, keys []string) error {
			all, err := c.XRange(ctx, keys[keyEvents], "-", "+").Result()
			if err != nil {
				return err
			}
			if err := c.Del(ctx, keys[keyEvents]).Err(); err != nil {
				return err
			}
			for _, m := range all {
				values := []any{}
				for k, v := range m.Values {
					values = append(values, k, v)
				}
				if m.ID == fmt.Sprintf("%d-0", seq) {
					values = fields
				}
				if err := c.XAdd(ctx, &redis.XAddArgs{Stream: keys[keyEvents], ID: m.ID, Values: values}).Err(); err != nil {
					return err
				}
			}
			return nil
		}, repair: nothing})
	}
	return cs
}

// dump is the raw content of a tenant's keys, and the value of those of the wrong type.
type dump struct {
	state  map[string]string
	exp    []redis.Z
	events []redis.XMessage
	junk   []string
}

func dumpKeys(t *testing.T, c redis.UniversalClient, keys []string) dump {
	t.Helper()
	ctx := context.Background()
	var d dump
	check := func(k int, err error) {
		if err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE") {
			d.junk = append(d.junk, keys[k]+"="+c.Get(ctx, keys[k]).Val())
		} else if err != nil {
			t.Fatal(err)
		}
	}
	var err error
	d.state, err = c.HGetAll(ctx, keys[keyState]).Result()
	check(keyState, err)
	d.exp, err = c.ZRangeWithScores(ctx, keys[keyExp], 0, -1).Result()
	check(keyExp, err)
	d.events, err = c.XRange(ctx, keys[keyEvents], "-", "+").Result()
	check(keyEvents, err)
	return d
}

// modelEntry is what the events tell of a live key: its version and expiry, or the raw
// stored entry when it does not parse (junk).
type modelEntry struct {
	version   uint64
	expiresAt int64
	raw       string
}

func entriesOf(state map[string]string) map[string]modelEntry {
	m := make(map[string]modelEntry)
	for field, s := range state {
		key, ok := strings.CutPrefix(field, entryPrefix)
		if !ok {
			continue
		}
		if e, _, err := parseHead(key, s); err == nil {
			m[key] = modelEntry{version: e.Version, expiresAt: e.ExpiresAt}
		} else {
			m[key] = modelEntry{raw: s}
		}
	}
	return m
}

// checkWrite checks a write's outcome against the tenant's keys before and after it: a failed
// write failed with ErrCorrupt (or ErrDecode) and changed nothing; a successful one added the
// events of versions #seq+1 to the new #seq, which, applied to the entries before, give the
// entries after: no event without its state change, no state change without its event.
func checkWrite(t *testing.T, what string, err error, before, after dump) {
	t.Helper()
	if err != nil {
		checkTyped(t, what, err)
		if diff := cmp.Diff(before, after, cmp.AllowUnexported(dump{})); diff != "" {
			t.Errorf("%s failed (%v) but changed the tenant's keys (-before +after):\n%s", what, err, diff)
		}
		return
	}
	seq0, err0 := strconv.ParseUint(cmpOr(before.state[metaSeq], "0"), 10, 64)
	seq1, err1 := strconv.ParseUint(after.state[metaSeq], 10, 64)
	if err0 != nil || err1 != nil || seq1 < seq0 {
		t.Fatalf("%s succeeded with #seq %q before, %q after", what, before.state[metaSeq], after.state[metaSeq])
	}
	model := entriesOf(before.state)
	next := seq0 + 1
	for _, m := range after.events {
		evs := parseMessage(m)
		if evs[len(evs)-1].Version <= seq0 {
			continue // older events, or junk among them
		}
		for _, ev := range evs {
			if ev.Version <= seq0 {
				continue
			}
			if ev.Kind == 0 || ev.Version != next || ev.Version > seq1 {
				t.Fatalf("%s: stream entry %s (%v) after version %d, #seq %d", what, m.ID, m.Values, next-1, seq1)
			}
			next++
			switch ev.Kind {
			case backend.EventUpsert, backend.EventTouch:
				model[ev.Key] = modelEntry{version: ev.Version, expiresAt: ev.ExpiresAt}
			default:
				delete(model, ev.Key)
			}
		}
	}
	if next != seq1+1 {
		t.Fatalf("%s: #seq went from %d to %d with events up to %d", what, seq0, seq1, next-1)
	}
	if diff := cmp.Diff(model, entriesOf(after.state), cmp.AllowUnexported(modelEntry{})); diff != "" {
		t.Errorf("%s: the entries differ from those the events make (-events +state):\n%s", what, diff)
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkTyped fails the test unless err wraps ErrCorrupt or ErrDecode, without the text of a
// raw script error.
func checkTyped(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, backend.ErrCorrupt) && !errors.Is(err, backend.ErrDecode) {
		t.Errorf("%s: %v, want an error wrapping ErrCorrupt or ErrDecode", what, err)
	}
	if msg := err.Error(); strings.Contains(msg, "script") || strings.Contains(msg, "attempt to") || len(msg) > 400 {
		t.Errorf("%s: error %q: a raw script error or too long", what, msg)
	}
}

func TestCorruptMiniredis(t *testing.T) { testCorrupt(t, newMini(t)) }
func TestCorruptRedis(t *testing.T)     { testCorrupt(t, newReal(t)) }
func TestCorruptCluster(t *testing.T)   { testCorrupt(t, newCluster(t)) }

// Junk in each kind of key of a tenant: every write either succeeds, consistently, or fails
// with ErrCorrupt before writing anything; Get and Snapshot return data or ErrCorrupt; once
// the junk is removed, everything works again.
func testCorrupt(t *testing.T, f fixture) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // never a hang
	defer cancel()
	st := f.open(t, backend.Limits{})
	for i, cr := range corruptions("", 0) {
		tenant := fmt.Sprintf("corrupt-%d", i)
		keys := st.keys(tenant)
		t.Run(cr.name, func(t *testing.T) {
			for _, k := range []string{"a", "b", "c"} {
				upsert(t, st, tenant, k, "v-"+k, time.Hour)
			}
			snap, err := st.Snapshot(ctx, tenant, "")
			if err != nil {
				t.Fatal(err)
			}
			cr = corruptions(snap.Cursor.Epoch, snap.Cursor.Seq)[i]
			// A reader at the head and one that reads the whole history.
			head := subscribe(t, st, tenant, nil)
			history := subscribe(t, st, tenant, &backend.Cursor{Epoch: snap.Cursor.Epoch})
			readers := []*reader{{"head", head, head.Start()}, {"history", history, history.Start()}}
			if err := cr.apply(ctx, f.client, keys); err != nil {
				t.Fatal(err)
			}
			fails := func(key string) bool { return cr.bad == "*" || cr.bad == key }
			ops := []struct {
				name string
				key  string
				run  func() error
			}{
				{"upsert a", "a", func() error {
					_, err := st.Upsert(ctx, tenant, backend.UpsertRequest{Key: "a", Value: []byte("w"), TTL: time.Hour})
					return err
				}},
				{"upsert n", "n", func() error {
					_, err := st.Upsert(ctx, tenant, backend.UpsertRequest{Key: "n", Value: []byte("w"), TTL: time.Hour})
					return err
				}},
				{"touch b", "b", func() error {
					_, err := st.Touch(ctx, tenant, backend.TouchRequest{Key: "b", TTL: 2 * time.Hour})
					return err
				}},
				{"touch a", "a", func() error {
					_, err := st.Touch(ctx, tenant, backend.TouchRequest{Key: "a", TTL: 2 * time.Hour})
					return err
				}},
				{"remove c", "c", func() error {
					_, err := st.Remove(ctx, tenant, backend.RemoveRequest{Key: "c"})
					return err
				}},
			}
			for _, op := range ops {
				before := dumpKeys(t, f.client, keys)
				err := op.run()
				checkWrite(t, op.name, err, before, dumpKeys(t, f.client, keys))
				if fails(op.key) && err == nil {
					t.Errorf("%s succeeded, want ErrCorrupt", op.name)
				}
				if !fails(op.key) && err != nil {
					t.Errorf("%s: %v, want success", op.name, err)
				}
			}
			for _, key := range []string{"a", "b", "n"} {
				_, _, err := st.Get(ctx, tenant, key)
				switch {
				case err != nil:
					checkTyped(t, "get "+key, err)
					if cr.bad != key && cr.bad != "*" {
						t.Errorf("get %s: %v, want no error", key, err)
					}
				case key == cr.bad:
					t.Errorf("get %s: no error, want ErrCorrupt", key)
				}
			}
			if _, err := st.Snapshot(ctx, tenant, ""); err != nil {
				checkTyped(t, "snapshot", err)
			} else if cr.snapshotFails {
				t.Errorf("snapshot: no error, want ErrCorrupt")
			}
			for _, r := range readers {
				r.check(t, f.client, keys, cr.readFails)
			}

			// Without the junk, every call works.
			if err := cr.repair(ctx, f.client, keys); err != nil {
				t.Fatal(err)
			}
			for _, op := range ops {
				before := dumpKeys(t, f.client, keys)
				err := op.run()
				checkWrite(t, op.name+" after the repair", err, before, dumpKeys(t, f.client, keys))
				if err != nil {
					t.Errorf("%s after the repair: %v", op.name, err)
				}
			}
			if _, err := st.Snapshot(ctx, tenant, ""); err != nil {
				t.Errorf("snapshot after the repair: %v", err)
			}
			for _, r := range readers {
				r.check(t, f.client, keys, false)
			}
		})
	}
}

// reader is a subscription under test and its position.
type reader struct {
	name string
	sub  backend.Subscription
	pos  backend.Cursor
}

// check reads until the reader reaches the tenant's version, skipping junk with overflows,
// or, with fails, until it gets ErrCorrupt. Each Next is bounded: a reader never waits
// silently for what cannot come.
func (r *reader) check(t *testing.T, c redis.UniversalClient, keys []string, fails bool) {
	t.Helper()
	ctx := context.Background()
	seq, err := strconv.ParseUint(c.HGet(ctx, keys[keyState], metaSeq).Val(), 10, 64)
	if err != nil && !fails {
		t.Fatalf("%s reader: #seq %v", r.name, err)
	}
	for fails || r.pos.Seq < seq {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ev, err := r.sub.Next(ctx)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s reader at %v, tenant at %d: no event, no error", r.name, r.pos, seq)
				return
			}
			checkTyped(t, r.name+" reader", err)
			if !fails {
				t.Errorf("%s reader: %v", r.name, err)
			}
			return
		}
		if ev.Kind != backend.EventOverflow && (ev.Epoch != r.pos.Epoch || ev.Version != r.pos.Seq+1) {
			t.Errorf("%s reader at %v: event %+v, want the next version or an overflow", r.name, r.pos, ev)
		}
		r.pos = ev.Cursor()
		if fails {
			t.Errorf("%s reader: event %+v, want ErrCorrupt", r.name, ev)
			return
		}
	}
}

// The case of the issue: junk in the stream, older than the retention. The trim drops it
// instead of failing: the tick and the next upsert succeed, with their events only.
func TestCorruptStreamTrimmedMiniredis(t *testing.T) {
	f := newMini(t)
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{EventRetention: time.Minute}), "trim"
	keys := st.keys(ten)
	upsert(t, st, ten, "a", "v", time.Hour)
	for _, id := range []string{"1-1", "1-2"} {
		if err := f.client.XAdd(ctx, &redis.XAddArgs{Stream: keys[keyEvents], ID: id, Values: []any{"junk", "1"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	f.shift(2 * time.Minute)
	if _, err := runTick(ctx, f.b.scripts, keys, st.limits, ""); err != nil {
		t.Fatalf("tick over junk older than the retention: %v", err)
	}
	if n := f.client.XLen(ctx, keys[keyEvents]).Val(); n != 0 {
		t.Errorf("%d entries left in the stream, want none", n)
	}
	for _, id := range []string{"1-3", "1-4"} {
		if err := f.client.XAdd(ctx, &redis.XAddArgs{Stream: keys[keyEvents], ID: id, Values: []any{"junk", "1"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	f.shift(2 * time.Minute)
	f.client.HSet(ctx, keys[keyState], metaTrim, "0")
	before := dumpKeys(t, f.client, keys)
	_, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: "a", Value: []byte("w"), TTL: time.Hour})
	after := dumpKeys(t, f.client, keys)
	checkWrite(t, "upsert", err, before, after)
	if err != nil || len(after.events) != 1 || after.events[0].ID != "2-0" {
		t.Fatalf("upsert over junk older than the retention: %v; stream %v, want only 2-0", err, after.events)
	}
}

// A tenant with junk in its meta recovers once its keys expire: the next write makes a new
// epoch, and a reader of the old one gets an overflow into it.
func TestCorruptExpiresMiniredis(t *testing.T) {
	f := newMini(t)
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{EventRetention: time.Minute}), "expires"
	keys := st.keys(ten)
	e := upsert(t, st, ten, "a", "v", time.Second)
	sub := subscribe(t, st, ten, nil)
	if err := f.client.HSet(ctx, keys[keyState], metaSeq, "junk").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: "b", Value: []byte("v"), TTL: time.Second}); !errors.Is(err, backend.ErrCorrupt) {
		t.Fatalf("upsert: %v, want ErrCorrupt", err)
	}
	f.shift(time.Second + 2*time.Minute)
	f.mini.FastForward(time.Second + 2*time.Minute)
	if seq := f.client.HGet(ctx, keys[keyState], metaSeq).Val(); seq == "junk" {
		t.Fatalf("#seq %q after the tenant's expiry", seq) // (the reader's pump may have made a new meta)
	}
	e2 := upsert(t, st, ten, "b", "v", time.Second)
	if e2.Version != 1 {
		t.Fatalf("upsert after the expiry: %+v, want version 1 of a new epoch", e2)
	}
	ev := next(t, sub)
	if ev.Kind != backend.EventOverflow || ev.After.Seq != e.Version || ev.FirstAvailable.Epoch == ev.After.Epoch {
		t.Fatalf("reader: %+v, want an overflow into a new epoch", ev)
	}
}
