package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"slices"
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
// right. A call's events are one stream entry, whose fields are in the order of entryFields,
// where FIELD_AT_POS expects the time.
func testProtocolRoundTrip(t *testing.T, f fixture) {
	ctx := context.Background()
	st := f.open(t, backend.Limits{})
	keys, l, c, sc := st.keys("round-trip"), st.limits, f.client, f.b.scripts

	t0, err := runTick(ctx, sc, keys, l, "")
	if err != nil || t0.head != 0 {
		t.Fatalf("first tick: %+v, %v", t0, err)
	}
	ops := []writeOp{
		{code: opUpsert, key: "a", value: []byte(`{"v":1}`), ttl: time.Hour, cond: backend.Condition{Kind: backend.CondIfNew}},
		{code: opUpsert, key: "b", value: []byte("x|y"), ttl: time.Second},
	}
	res, err := runWrite(ctx, sc, keys, "", l, ops)
	if err != nil || res[0].err != nil || res[1].err != nil || !res[0].ok || !res[1].ok {
		t.Fatalf("upsert: %+v, %v", res, err)
	}
	entry := func(op writeOp, r writeResult) backend.Entry {
		return backend.Entry{Key: op.key, Value: op.value, Version: r.version, Epoch: r.epoch, CreatedAt: r.createdAt, UpdatedAt: r.updatedAt, ExpiresAt: r.expiresAt}
	}
	a, b := entry(ops[0], res[0]), entry(ops[1], res[1])
	// The epoch is made of the server's time when the tick created the tenant's meta.
	if et, ok := backend.EpochTime(a.Epoch); !ok || et.UnixMilli() != t0.now || a.Epoch != t0.epoch || b.Epoch != a.Epoch {
		t.Fatalf("epochs %q, %q of a tenant created at %d with epoch %q", a.Epoch, b.Epoch, t0.now, t0.epoch)
	}
	if a.Version != 1 || b.Version != 2 || a.CreatedAt != a.UpdatedAt || a.ExpiresAt != a.UpdatedAt+time.Hour.Milliseconds() {
		t.Fatalf("upserted %+v and %+v", a, b)
	}
	if got, ok, err := runGet(ctx, sc, keys, "a"); err != nil || !ok || !cmp.Equal(got, a) {
		t.Fatalf("get a: %+v, %v, %v; want %+v", got, ok, err, a)
	}
	touched, err := write1(ctx, sc, keys, l, writeOp{code: opTouch, key: "a", ttl: 2 * time.Hour})
	if err != nil || !touched.ok || touched.version != 3 || touched.createdAt != a.CreatedAt || touched.expiresAt != touched.updatedAt+2*time.Hour.Milliseconds() {
		t.Fatalf("touch: %+v, %v", touched, err)
	}
	quiet, err := write1(ctx, sc, keys, l, writeOp{code: opTouchQuiet, key: "a", ttl: 3 * time.Hour})
	if err != nil || !quiet.ok || quiet.version != 3 || quiet.updatedAt != touched.updatedAt || quiet.expiresAt <= touched.expiresAt {
		t.Fatalf("quiet touch: %+v, %v", quiet, err)
	}
	f.advance(t, time.Second)
	t1, err := runTick(ctx, sc, keys, l, "") // expires b
	if err != nil || t1.epoch != t0.epoch || t1.head != 4 || t1.due != quiet.expiresAt {
		t.Fatalf("tick after b's expiry: %+v, %v; want head 4, due %d", t1, err, quiet.expiresAt)
	}
	if got, ok, err := runGet(ctx, sc, keys, "b"); err != nil || ok {
		t.Fatalf("get b after its expiry: %+v, %v, %v", got, ok, err)
	}
	before, err := runTick(ctx, sc, keys, l, "")
	if err != nil {
		t.Fatal(err)
	}
	if removed, err := write1(ctx, sc, keys, l, writeOp{code: opRemove, key: "a", value: []byte("bye")}); err != nil || !removed.ok {
		t.Fatalf("remove: %+v, %v", removed, err)
	}
	if removed, err := write1(ctx, sc, keys, l, writeOp{code: opRemove, key: "a"}); err != nil || removed.ok {
		t.Fatalf("remove again: %+v, %v", removed, err)
	}
	after, err := runTick(ctx, sc, keys, l, "")
	if err != nil {
		t.Fatal(err)
	}

	epoch := t0.epoch
	want := []backend.Event{
		{Kind: backend.EventUpsert, Epoch: epoch, Version: 1, Key: "a", At: a.UpdatedAt, CreatedAt: a.CreatedAt, ExpiresAt: a.ExpiresAt, Value: a.Value},
		{Kind: backend.EventUpsert, Epoch: epoch, Version: 2, Key: "b", At: b.UpdatedAt, CreatedAt: b.CreatedAt, ExpiresAt: b.ExpiresAt, Value: b.Value},
		{Kind: backend.EventTouch, Epoch: epoch, Version: 3, Key: "a", At: touched.updatedAt, ExpiresAt: touched.expiresAt},
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

	r, err := runRead(ctx, sc, keys, l, backend.Cursor{Epoch: epoch}, 100)
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
		got = append(got, parseMessage(m)...)
	}
	check("XREAD", got)

	// The two upserts of the first call are one entry.
	ids := []string{"2-1", "3-0", "4-0", "5-0"}
	raw, err := c.Do(ctx, "XRANGE", keys[keyEvents], "-", "+").Slice()
	if err != nil || len(raw) != len(ids) {
		t.Fatalf("xrange: %v, %v; want entries %v", raw, err, ids)
	}
	for i, e := range raw {
		pair := e.([]any)
		if pair[0] != ids[i] {
			t.Errorf("entry %d: ID %v, want %s", i+1, pair[0], ids[i])
		}
		flat := pair[1].([]any)
		for j, name := range entryFields {
			if flat[2*j] != name {
				t.Errorf("entry %d: field %d is %v, want %q: %v", i+1, j+1, flat[2*j], name, flat)
			}
		}
		if at := fmt.Sprint(got[i+1].At); flat[fieldPos(fieldAt)-1] != at {
			t.Errorf("entry %d: value at FIELD_AT_POS is %v, want the time %s", i+1, flat[fieldPos(fieldAt)-1], at)
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
	keys, l, sc := st.keys("conditions"), st.limits, f.b.scripts
	epoch := upsert(t, st, "conditions", "first", "v", time.Hour).Epoch
	// The conditions for a key at version v (0 when not live): the last three never hold.
	conds := func(v uint64) []backend.Condition {
		return []backend.Condition{
			{Kind: backend.CondNone},
			{Kind: backend.CondIfNew},
			{Kind: backend.CondIfExists},
			{Kind: backend.CondIfVersion, Version: v},
			{Kind: backend.CondIfVersion, Version: v, Epoch: epoch},
			{Kind: backend.CondIfVersion, Version: v + 1},
			{Kind: backend.CondIfVersion, Version: v - 1},
			{Kind: backend.CondIfVersion, Version: v, Epoch: "000000000000" + epoch[12:]},
		}
	}
	for _, code := range []string{opUpsert, opTouch, opRemove} {
		for _, live := range []bool{false, true} {
			for i := range conds(0) {
				key := fmt.Sprintf("%s-%v-%d", code, live, i)
				var version uint64
				if live {
					version = upsert(t, st, "conditions", key, "v", time.Hour).Version
				}
				cond := conds(version)[i]
				want := cond.Check(key, live, epoch, version)
				r, err := write1(ctx, sc, keys, l, writeOp{code: code, key: key, value: []byte("v"), ttl: time.Hour, cond: cond})
				var ce *backend.ConflictError
				switch {
				case want == nil && (r.ok != (live || code == opUpsert) || err != nil):
					t.Errorf("op %s on %s (live %v, version %d) if %+v: %+v, %v; want no conflict", code, key, live, version, cond, r, err)
				case want != nil && (!errors.As(err, &ce) || *ce != *want.(*backend.ConflictError) || r.ok):
					t.Errorf("op %s on %s (live %v, version %d) if %+v: %+v, %v; want %v", code, key, live, version, cond, r, err, want)
				}
			}
		}
	}
}

// write1 runs one operation through runWrite and returns its result and error.
func write1(ctx context.Context, sc *scripter, keys []string, l backend.Limits, op writeOp) (writeResult, error) {
	res, err := runWrite(ctx, sc, keys, "", l, []writeOp{op})
	if err != nil {
		return writeResult{}, err
	}
	return res[0], res[0].err
}

func TestMalformedWriteMiniredis(t *testing.T) { testMalformedWrite(t, newMini(t)) }
func TestMalformedWriteRedis(t *testing.T)     { testMalformedWrite(t, newReal(t)) }

// A batch with an unknown operation or condition code, or a malformed TTL, fails as a whole
// before its first write: the operations before the bad one are not applied either.
func testMalformedWrite(t *testing.T, f fixture) {
	ctx := context.Background()
	st := f.open(t, backend.Limits{})
	keys, l, c, sc := st.keys("malformed"), st.limits, f.client, f.b.scripts
	ops := []writeOp{
		{code: opUpsert, key: "a", value: []byte("v"), ttl: time.Hour},
		{code: opUpsert, key: "b", value: []byte("v"), ttl: time.Hour},
	}
	second := writeHeadArgs + writeArgsPerOp
	for _, bad := range []struct {
		pos   int
		value any
	}{{second + opCode, 9}, {second + opCond, 9}, {second + opTTL, "x"}} {
		cmd, a := writeCmd(keys, "", "", l, ops)
		a.set(bad.pos, bad.value)
		if res, err := sc.runInts(ctx, writeScript, cmd); err == nil {
			t.Errorf("argument %d set to %v: reply %v, want an error", bad.pos, bad.value, res)
		}
	}
	if n, err := c.Exists(ctx, keys...).Result(); err != nil || n != 0 {
		t.Fatalf("%d of the tenant's keys exist after malformed writes, %v; want none", n, err)
	}
}

func TestKnownEpochMiniredis(t *testing.T) { testKnownEpoch(t, newMini(t)) }
func TestKnownEpochRedis(t *testing.T)     { testKnownEpoch(t, newReal(t)) }

// write.lua leaves the tenant's epoch out of its reply only when the call says the client
// knows it by that epoch; a store's writes send the epoch its last write returned, and get the
// new one when the tenant was lost and made anew since.
func testKnownEpoch(t *testing.T, f fixture) {
	ctx := context.Background()
	st := f.open(t, backend.Limits{})
	keys, l, sc := st.keys("known"), st.limits, f.b.scripts
	op := []writeOp{{code: opUpsert, key: "a", value: []byte("v"), ttl: time.Hour}}
	reply := func(known string) []int64 {
		t.Helper()
		cmd, _ := writeCmd(keys, known, "", l, op)
		res, err := sc.runInts(ctx, writeScript, cmd)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	const n = writeReplyPerOp + writeReplyBatch // the operation's integers and the tail
	first := reply("")
	epoch, ok := decodeEpoch(first[n:])
	if !ok {
		t.Fatalf("reply %v: no epoch after the operation's integers and the tail", first)
	}
	if first[n-3] != 1 || first[n-2] != 1 || first[n-1] != 3_600_000 && first[n-1] != 3_599_999 {
		t.Fatalf("reply %v: tail %v, want the first and last versions, 1 and 1, and the ms until the next expiry, an hour", first, first[n-3:n])
	}
	if res := reply(epoch); len(res) != n || res[n-3] != 2 || res[n-2] != 2 {
		t.Fatalf("reply %v to a call that knows epoch %q: want the operation's %d integers and the tail (version 2) only", res, epoch, writeReplyPerOp)
	}
	if res := reply("0123456789abcdef0123"); !slices.Equal(res[n:], first[n:]) {
		t.Fatalf("reply %v to a call that knows another epoch: want the epoch, %v", res, first[n:])
	}
	if res, err := runWrite(ctx, sc, keys, epoch, l, op); err != nil || res[0].epoch != epoch {
		t.Fatalf("write knowing the epoch: %+v, %v; want epoch %q", res, err, epoch)
	}
	if _, _, err := decodeWrite(make([]int64, n), "", l, op); err == nil {
		t.Fatal("a reply without the epoch to a call that knows none decoded")
	}
	bad := slices.Clone(first)
	bad[n-1] = -2
	if _, _, err := decodeWrite(bad, "", l, op); err == nil {
		t.Fatalf("reply %v with a due time of -2 decoded", bad)
	}

	// Through the store: its writes send the epoch it saw last, and see a new one.
	e1, err := st.Upsert(ctx, "known-store", backend.UpsertRequest{Key: "a", Value: []byte("v"), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.slot("known-store").epoch; got != e1.Epoch {
		t.Fatalf("the store knows the tenant by %q after a write in epoch %q", got, e1.Epoch)
	}
	if err := f.client.Del(ctx, st.keys("known-store")...).Err(); err != nil {
		t.Fatal(err)
	}
	e2, err := st.Upsert(ctx, "known-store", backend.UpsertRequest{Key: "a", Value: []byte("w"), TTL: time.Hour})
	if err != nil || e2.Epoch == e1.Epoch || e2.Version != 1 {
		t.Fatalf("upsert after the tenant was lost: %+v, %v; want version 1 in an epoch other than %q", e2, err, e1.Epoch)
	}
	if got := st.slot("known-store").epoch; got != e2.Epoch {
		t.Fatalf("the store knows the tenant by %q after a write in epoch %q", got, e2.Epoch)
	}
}

// decodeEpoch reads back every valid epoch as write.lua packs it, epochChunk bytes to an
// integer, and rejects what no valid epoch packs to.
func TestDecodeEpoch(t *testing.T) {
	const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for n := 1; n <= backend.MaxEpochBytes; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = alnum[(i*7+n)%len(alnum)]
		}
		var chunks []int64
		for j := 0; j < n; j += epochChunk {
			var v int64
			for _, c := range b[j:min(j+epochChunk, n)] {
				v = v*256 + int64(c)
			}
			chunks = append(chunks, v)
		}
		if got, ok := decodeEpoch(chunks); !ok || got != string(b) {
			t.Errorf("decodeEpoch of %q = %q, %v", b, got, ok)
		}
	}
	for _, chunks := range [][]int64{nil, {0}, {'-'}, make([]int64, backend.MaxEpochBytes/epochChunk+2)} {
		if got, ok := decodeEpoch(chunks); ok {
			t.Errorf("decodeEpoch(%v) = %q, true", chunks, got)
		}
	}
}

// A Get names the tenant's state key alone, which get.lua reads: in a cluster, a call of the
// tenant's three keys fails with TRYAGAIN while a migration of their slot has moved some of
// them and not the others.
func TestGetNamesTheStateKeyAloneMiniredis(t *testing.T) {
	f := newMini(t)
	st, ten := f.open(t, backend.Limits{}), "get-keys"
	upsert(t, st, ten, "k", "v", time.Hour)
	gets, alone := countCmds(func(c redis.Cmder) bool { return scriptOf(c.Args()) == getScript }), countCmds(func(c redis.Cmder) bool {
		a := c.Args()
		return scriptOf(a) == getScript && fmt.Sprint(a[2]) == "1" && a[3] == st.keys(ten)[keyState]
	})
	f.client.AddHook(gets)
	f.client.AddHook(alone)
	if _, ok, err := st.Get(context.Background(), ten, "k"); !ok || err != nil {
		t.Fatalf("get: %v, %v", ok, err)
	}
	if n, m := gets.n.Load(), alone.n.Load(); n == 0 || m != n {
		t.Errorf("%d of %d calls of get.lua named the state key alone, want all", m, n)
	}
}

// A write call may be sent again after a server's refusal before it ran (which go-redis's
// cluster client retries), and after nothing else: not after a lost connection or a timeout,
// after which it may have run, nor after an error a script raised.
func TestWriteNoRetry(t *testing.T) {
	for _, tc := range []struct {
		err   error
		retry bool
	}{
		{nil, false},
		{replyError("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{replyError("CLUSTERDOWN The cluster is down"), true},
		{replyError("LOADING Redis is loading the dataset in memory"), true},
		{replyError("READONLY You can't write against a read only replica."), true},
		{replyError("ERR Error running script: some error"), false},
		{replyError("EPHEMERAL_CORRUPT 1 6b 6a756e6b 4"), false},
		{io.ErrUnexpectedEOF, false},
		{context.DeadlineExceeded, false},
	} {
		cmd := newIntsCmd(context.Background(), []any{"fcall", "f", 0}).(onceIntsCmd)
		cmd.SetErr(tc.err)
		if got := !cmd.NoRetry(); got != tc.retry {
			t.Errorf("after %v: may retry %v, want %v", tc.err, got, tc.retry)
		}
	}
}
