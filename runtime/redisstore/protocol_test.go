package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
)

var (
	luaComment = regexp.MustCompile(`--.*`) // no string of the Lua sources contains "--"
	luaString  = regexp.MustCompile(`'[^']*'`)
)

// luaCode returns the Lua sources without their comments, by file name.
func luaCode(t *testing.T) map[string]string {
	t.Helper()
	code := make(map[string]string)
	err := fs.WalkDir(luaFiles, "lua", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := luaFiles.ReadFile(path)
		code[path] = luaComment.ReplaceAllString(string(src), "")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// Every constant of the prelude is used by the Lua code, and the Lua code spells none of the
// protocol's values itself.
func TestLuaUsesProtocolNames(t *testing.T) {
	code := luaCode(t)
	var all strings.Builder
	for _, c := range code {
		all.WriteString(c)
	}
	seen := make(map[string]bool)
	for _, c := range luaConstants {
		if seen[c.name] {
			t.Errorf("Lua constant %s defined twice", c.name)
		}
		seen[c.name] = true
		if !regexp.MustCompile(`\b` + c.name + `\b`).MatchString(all.String()) {
			t.Errorf("Lua constant %s is not used by lua/*.lua", c.name)
		}
	}

	// Literals of the protocol, in the code with its strings emptied.
	literals := []struct {
		what string
		re   *regexp.Regexp
	}{
		{"an argument position", regexp.MustCompile(`ARGV\[[^\]]*\d`)},
		{"a key position", regexp.MustCompile(`KEYS\[[^\]]*\d`)},
		{"a stream entry's field position", regexp.MustCompile(`\[2\]\[\d+\]`)},
		{"a status", regexp.MustCompile(`(status\s*=|return\s*\{)\s*-?\d`)},
		{"a condition code", regexp.MustCompile(`code\s*[=~]=\s*-?\d`)},
	}
	// A letter alone is an event kind or a field name, '#' starts a meta field, and a number
	// compared with is a code.
	quoted := regexp.MustCompile(`^'([a-zA-Z]|#.*)'$`)
	compared := regexp.MustCompile(`[=~]=\s*'-?\d+'`)
	for path, c := range code {
		blank := luaString.ReplaceAllString(c, "''")
		for _, l := range literals {
			for _, m := range l.re.FindAllString(blank, -1) {
				t.Errorf("%s: %q: %s spelled as a literal, not a protocol name", path, m, l.what)
			}
		}
		for _, s := range luaString.FindAllString(c, -1) {
			if quoted.MatchString(s) {
				t.Errorf("%s: string %s: a protocol value spelled as a literal", path, s)
			}
		}
		for _, m := range compared.FindAllString(c, -1) {
			t.Errorf("%s: %q: a code spelled as a literal", path, m)
		}
	}
}

func TestProtocolRoundTripMiniredis(t *testing.T) { testProtocolRoundTrip(t, newMini(t)) }
func TestProtocolRoundTripRedis(t *testing.T)     { testProtocolRoundTrip(t, newReal(t)) }

// Every script runs through its argument builder and reply decoder, and every kind of event
// the Lua writes is decoded by Go, from a script's reply and from XREAD, with every field
// right. The event head is in the order of eventHead, where FIELD_AT_POS expects the time.
func testProtocolRoundTrip(t *testing.T, f fixture) {
	ctx := context.Background()
	st := f.open(t, backend.Limits{})
	keys, l, c := st.keys("round-trip"), st.limits, f.client

	t0, err := runTick(ctx, c, keys, l)
	if err != nil || t0.head != 0 {
		t.Fatalf("first tick: %+v, %v", t0, err)
	}
	res, err := runUpsert(ctx, c, keys, l, []backend.UpsertRequest{
		{Key: "a", Value: []byte(`{"v":1}`), TTL: time.Hour, Cond: backend.Condition{Kind: backend.CondIfNew}},
		{Key: "b", Value: []byte("x|y"), TTL: time.Second},
	})
	if err != nil || res[0].err != nil || res[1].err != nil {
		t.Fatalf("upsert: %+v, %v", res, err)
	}
	a, b := res[0].entry, res[1].entry
	if a.Version != 1 || b.Version != 2 || a.CreatedAt != a.UpdatedAt || a.ExpiresAt != a.UpdatedAt+time.Hour.Milliseconds() {
		t.Fatalf("upserted %+v and %+v", a, b)
	}
	if got, ok, err := runGet(ctx, c, keys, "a"); err != nil || !ok || !cmp.Equal(got, a) {
		t.Fatalf("get a: %+v, %v, %v; want %+v", got, ok, err, a)
	}
	touched, err := runTouch(ctx, c, keys, l, backend.TouchRequest{Key: "a", TTL: 2 * time.Hour})
	if err != nil || !touched.OK || touched.Version != 3 {
		t.Fatalf("touch: %+v, %v", touched, err)
	}
	quiet, err := runTouch(ctx, c, keys, l, backend.TouchRequest{Key: "a", TTL: 3 * time.Hour, Quiet: true})
	if err != nil || !quiet.OK || quiet.Version != 3 || quiet.ExpiresAt <= touched.ExpiresAt {
		t.Fatalf("quiet touch: %+v, %v", quiet, err)
	}
	f.advance(t, time.Second)
	t1, err := runTick(ctx, c, keys, l) // expires b
	if err != nil || t1.epoch != t0.epoch || t1.head != 4 || t1.due != quiet.ExpiresAt {
		t.Fatalf("tick after b's expiry: %+v, %v; want head 4, due %d", t1, err, quiet.ExpiresAt)
	}
	if got, ok, err := runGet(ctx, c, keys, "b"); err != nil || ok {
		t.Fatalf("get b after its expiry: %+v, %v, %v", got, ok, err)
	}
	before, err := runTick(ctx, c, keys, l)
	if err != nil {
		t.Fatal(err)
	}
	if removed, err := runRemove(ctx, c, keys, l, backend.RemoveRequest{Key: "a", Reason: "bye"}); err != nil || !removed {
		t.Fatalf("remove: %v, %v", removed, err)
	}
	if removed, err := runRemove(ctx, c, keys, l, backend.RemoveRequest{Key: "a"}); err != nil || removed {
		t.Fatalf("remove again: %v, %v", removed, err)
	}
	after, err := runTick(ctx, c, keys, l)
	if err != nil {
		t.Fatal(err)
	}

	epoch := t0.epoch
	want := []backend.Event{
		{Kind: backend.EventUpsert, Epoch: epoch, Version: 1, Key: "a", At: a.UpdatedAt, CreatedAt: a.CreatedAt, ExpiresAt: a.ExpiresAt, Value: a.Value},
		{Kind: backend.EventUpsert, Epoch: epoch, Version: 2, Key: "b", At: b.UpdatedAt, CreatedAt: b.CreatedAt, ExpiresAt: b.ExpiresAt, Value: b.Value},
		{Kind: backend.EventTouch, Epoch: epoch, Version: 3, Key: "a", At: touched.ExpiresAt - 2*time.Hour.Milliseconds(), ExpiresAt: touched.ExpiresAt},
		{Kind: backend.EventExpire, Epoch: epoch, Version: 4, Key: "b", At: t1.now, ExpiresAt: b.ExpiresAt},
		{Kind: backend.EventDelete, Epoch: epoch, Version: 5, Key: "a", Reason: "bye"},
	}
	check := func(how string, got []backend.Event) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d events, want %d: %+v", how, len(got), len(want), got)
		}
		// Remove does not return the time of its delete event.
		if at := got[4].At; at < before.now || at > after.now {
			t.Errorf("%s: delete event at %d, want within [%d, %d]", how, at, before.now, after.now)
		}
		w := append([]backend.Event(nil), want...)
		w[4].At = got[4].At
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("%s: events (-want +got):\n%s", how, diff)
		}
	}

	r, err := runRead(ctx, c, keys, l, backend.Cursor{Epoch: epoch}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if r.epoch != epoch || r.head != 5 || r.first != 1 || r.now < after.now {
		t.Fatalf("read: epoch %s, head %d, first %d, now %d; want %s, 5, 1, >= %d", r.epoch, r.head, r.first, r.now, epoch, after.now)
	}
	check("read.lua", r.events)

	streams, err := c.XRead(ctx, &redis.XReadArgs{Streams: []string{keys[keyEvents], "0-0"}}).Result()
	if err != nil || len(streams) != 1 {
		t.Fatalf("xread: %v, %v", streams, err)
	}
	var got []backend.Event
	for _, m := range streams[0].Messages {
		ev, err := parseEvent(m.ID, m.Values)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	check("XREAD", got)

	raw, err := c.Do(ctx, "XRANGE", keys[keyEvents], "-", "+").Slice()
	if err != nil || len(raw) != len(want) {
		t.Fatalf("xrange: %v, %v", raw, err)
	}
	for i, e := range raw {
		flat := e.([]any)[1].([]any)
		for j, name := range eventHead {
			if flat[2*j] != name {
				t.Errorf("event %d: field %d is %v, want %q: %v", i+1, j+1, flat[2*j], name, flat)
			}
		}
		if at := fmt.Sprint(got[i].At); flat[headPos(fieldAt)-1] != at {
			t.Errorf("event %d: value at FIELD_AT_POS is %v, want the time %s", i+1, flat[headPos(fieldAt)-1], at)
		}
	}
}

func TestConditionCodesMiniredis(t *testing.T) { testConditionCodes(t, newMini(t)) }
func TestConditionCodesRedis(t *testing.T)     { testConditionCodes(t, newReal(t)) }

// Each condition code takes the branch of backend.Condition.Check in every writing script,
// for a live key and a missing one, and a failed condition returns the ConflictError of Check.
func testConditionCodes(t *testing.T, f fixture) {
	ctx := context.Background()
	st := f.open(t, backend.Limits{})
	keys, l, c := st.keys("conditions"), st.limits, f.client
	// The conditions for a key at version v (0 when not live): the last two never hold.
	conds := func(v uint64) []backend.Condition {
		return []backend.Condition{
			{Kind: backend.CondNone},
			{Kind: backend.CondIfNew},
			{Kind: backend.CondIfExists},
			{Kind: backend.CondIfVersion, Version: v},
			{Kind: backend.CondIfVersion, Version: v + 1},
			{Kind: backend.CondIfVersion, Version: v - 1},
		}
	}
	// Each op reports whether it wrote.
	ops := []struct {
		name string
		run  func(key string, cond backend.Condition) (bool, error)
	}{
		{"upsert", func(key string, cond backend.Condition) (bool, error) {
			res, err := runUpsert(ctx, c, keys, l, []backend.UpsertRequest{{Key: key, Value: []byte("v"), TTL: time.Hour, Cond: cond}})
			if err != nil {
				return false, err
			}
			return res[0].err == nil, res[0].err
		}},
		{"touch", func(key string, cond backend.Condition) (bool, error) {
			r, err := runTouch(ctx, c, keys, l, backend.TouchRequest{Key: key, TTL: time.Hour, Cond: cond})
			return r.OK, err
		}},
		{"remove", func(key string, cond backend.Condition) (bool, error) {
			return runRemove(ctx, c, keys, l, backend.RemoveRequest{Key: key, Cond: cond})
		}},
	}
	for _, op := range ops {
		for _, live := range []bool{false, true} {
			for i := range conds(0) {
				key := fmt.Sprintf("%s-%v-%d", op.name, live, i)
				var version uint64
				if live {
					version = upsert(t, st, "conditions", key, "v", time.Hour).Version
				}
				cond := conds(version)[i]
				want := cond.Check(key, live, version)
				wrote, err := op.run(key, cond)
				var ce *backend.ConflictError
				switch {
				case want == nil && (wrote != (live || op.name == "upsert") || err != nil):
					t.Errorf("%s of %s (live %v, version %d) if %+v: wrote %v, %v; want no conflict", op.name, key, live, version, cond, wrote, err)
				case want != nil && (!errors.As(err, &ce) || *ce != *want.(*backend.ConflictError) || wrote):
					t.Errorf("%s of %s (live %v, version %d) if %+v: wrote %v, %v; want %v", op.name, key, live, version, cond, wrote, err, want)
				}
			}
		}
	}

	// An unknown code fails the condition in Lua, and the Go side reports the mismatch.
	a := upsertArgs(l, []backend.UpsertRequest{{Key: "unknown", Value: []byte("v"), TTL: time.Hour}})
	a.set(upsertHeadArgs+upsertCond, 9)
	out, err := upsertScript.Run(ctx, c, keys, a...).Int64Slice()
	if err != nil {
		t.Fatal(err)
	}
	if res, err := decodeUpsert(out, l, []backend.UpsertRequest{{Key: "unknown"}}); err != nil || res[0].err == nil || errors.Is(res[0].err, backend.ErrConflict) {
		t.Fatalf("upsert with condition code 9: %+v, %v; want an error that is not a conflict", res, err)
	}
}
