package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// scriptCalls is a go-redis hook that records how the scripts of a client's calls were sent
// ("fcall", "evalsha" or "eval", and "function load"), alone or in pipelines, with the error of
// each. While missing is above 0, an FCALL fails unsent, as on a server without the library,
// and counts missing down; loadErr, when set, is the error of every FUNCTION LOAD, unsent.
type scriptCalls struct {
	mu      sync.Mutex
	sent    []string // the command's name, and " !" when it failed
	missing atomic.Int64
	loadErr error
}

func (c *scriptCalls) record(cmd redis.Cmder, err error) {
	name := cmd.Name()
	switch {
	case scriptOf(cmd.Args()) != nil:
	case isFunctionLoad(cmd):
		name = "function load"
	default:
		return
	}
	if err != nil {
		name += " !"
	}
	c.mu.Lock()
	c.sent = append(c.sent, name)
	c.mu.Unlock()
}

// take returns the calls recorded since the last take.
func (c *scriptCalls) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sent
	c.sent = nil
	return s
}

func (c *scriptCalls) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *scriptCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		var err error
		switch {
		case cmd.Name() == "fcall" && c.missing.Add(-1) >= 0:
			err = replyError("ERR Function not found")
			cmd.SetErr(err)
		case isFunctionLoad(cmd) && c.loadErr != nil:
			err = c.loadErr
			cmd.SetErr(err)
		default:
			err = next(ctx, cmd)
		}
		c.record(cmd, err)
		return err
	}
}

func (c *scriptCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			c.record(cmd, cmd.Err())
		}
		return err
	}
}

// isFunctionLoad reports whether cmd is a FUNCTION LOAD.
func isFunctionLoad(cmd redis.Cmder) bool {
	a := cmd.Args()
	return cmd.Name() == "function" && len(a) > 1 && a[1] == "load"
}

// exercise runs the scripts of st's backend on tenant: a write, a get, two readers (one from
// an earlier cursor) and a tick.
func exercise(t *testing.T, f fixture, st *store, tenant string) {
	t.Helper()
	ctx := context.Background()
	e := upsert(t, st, tenant, "k", "v", time.Hour)
	if _, ok, err := st.Get(ctx, tenant, "k"); err != nil || !ok {
		t.Fatalf("get: %v, %v", ok, err)
	}
	sub, err := st.Subscribe(ctx, tenant, backend.SubscribeRequest{After: &backend.Cursor{Epoch: e.Epoch, Seq: e.Version - 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if ev := next(t, sub); ev.Version != e.Version {
		t.Fatalf("reader's first event %+v, want version %d", ev, e.Version)
	}
	sub2, err := st.Subscribe(ctx, tenant, backend.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	sub2.Close()
	if _, err := runTick(ctx, f.b.scripts, st.keys(tenant), st.limits, ""); err != nil {
		t.Fatal(err)
	}
}

// only reports whether every call of sent is name, and there is one.
func only(sent []string, name string) bool {
	for _, s := range sent {
		if s != name {
			return false
		}
	}
	return len(sent) > 0
}

// On Redis 7 the scripts run as the functions of the library; after FUNCTION DELETE of it (or
// FUNCTION FLUSH, or a restart without persistence) the next call loads it again and runs as a
// function.
func TestScriptsAsFunctionsRedis(t *testing.T) {
	f := newReal(t)
	calls := &scriptCalls{}
	f.client.AddHook(calls)
	st := f.open(t, backend.Limits{})
	ctx := context.Background()
	exercise(t, f, st, "a")
	calls.take() // the first calls may have loaded the library
	exercise(t, f, st, "b")
	if sent := calls.take(); !only(sent, "fcall") {
		t.Fatalf("calls %q, want FCALLs only", sent)
	}
	if err := f.client.FunctionDelete(ctx, libraryName).Err(); err != nil {
		t.Fatal(err)
	}
	f.b.scripts.loadedAt.Store(0) // as if the first calls loaded nothing, or long ago: see loadEvery
	exercise(t, f, st, "c")
	sent := calls.take()
	load := slices.Index(sent, "function load")
	if load < 1 || !only(sent[:load], "fcall !") || !only(slices.DeleteFunc(sent[load:], func(s string) bool { return s == "function load" }), "fcall") {
		t.Fatalf("calls after FUNCTION DELETE %q, want failed FCALLs, FUNCTION LOAD, then FCALLs", sent)
	}
	if f.b.scripts.evalOnly.Load() {
		t.Fatal("the backend fell back to EVALSHA")
	}
}

// On miniredis, which has no functions, the scripts run with EVALSHA (EVAL when not cached)
// after the first FCALL.
func TestScriptsWithoutFunctionsMiniredis(t *testing.T) {
	f := newMini(t)
	calls := &scriptCalls{}
	f.client.AddHook(calls)
	st := f.open(t, backend.Limits{})
	exercise(t, f, st, "a")
	sent := calls.take()
	if len(sent) < 2 || sent[0] != "fcall !" || strings.Contains(strings.Join(sent[1:], ","), "fcall") {
		t.Fatalf("calls %q, want one refused FCALL, then EVALSHA and EVAL", sent)
	}
	exercise(t, f, st, "b")
	if sent := calls.take(); !only(sent, "evalsha") {
		t.Fatalf("calls %q, want EVALSHAs only", sent)
	}
}

// aclClient returns a client of the real server as a user of its own that may run all but
// what the ACL rule denied says (such as "-fcall"), deleted when the test ends.
func aclClient(t *testing.T, denied string) redis.UniversalClient {
	admin := redistest.Client(t)
	user, pass := "ephemeral-test-"+strings.ToLower(rand.Text()), rand.Text()
	t.Cleanup(func() { admin.Do(context.Background(), "acl", "deluser", user) }) // before Client closes admin
	if err := admin.Do(context.Background(), "acl", "setuser", user, "on", ">"+pass, "~*", "&*", "+@all", denied).Err(); err != nil {
		t.Fatal(err)
	}
	return redis.NewClient(&redis.Options{Addr: admin.Options().Addr, Username: user, Password: pass})
}

// A user whose ACL refuses FCALL, or FUNCTION LOAD when the library is missing, runs the
// scripts with EVALSHA.
func TestScriptsFallBackRedis(t *testing.T) {
	for _, tc := range []struct {
		name    string
		denied  string
		missing bool // the server has no library, for this client
	}{
		{"no fcall", "-fcall", false},
		{"no function load", "-function", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newOn(t, aclClient(t, tc.denied), nil)
			calls := &scriptCalls{}
			if tc.missing {
				calls.missing.Store(math.MaxInt64)
			}
			f.client.AddHook(calls)
			st := f.open(t, backend.Limits{})
			exercise(t, f, st, "a")
			calls.take()
			if !f.b.scripts.evalOnly.Load() {
				t.Fatal("still on FCALL")
			}
			exercise(t, f, st, "b")
			if sent := calls.take(); !only(sent, "evalsha") {
				t.Fatalf("calls %q, want EVALSHAs only", sent)
			}
		})
	}
}

// An error that a function raises, after it may have written, is the call's error: the call
// is not sent again with EVALSHA, even when the error is a refusal by the ACL.
func TestScriptErrorNotRetriedRedis(t *testing.T) {
	f := newOn(t, aclClient(t, "-xadd"), nil)
	calls := &scriptCalls{}
	f.client.AddHook(calls)
	st := f.open(t, backend.Limits{})
	_, err := st.Upsert(context.Background(), "a", backend.UpsertRequest{Key: "k", Value: []byte("v"), TTL: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "can't run this command") {
		t.Fatalf("upsert: %v, want the refusal of XADD", err)
	}
	sent := calls.take()
	if n := len(sent); n == 0 || sent[n-1] != "fcall !" || strings.Contains(strings.Join(sent, ","), "eval") {
		t.Fatalf("calls %q, want the failed FCALL last and no EVALSHA", sent)
	}
}

// A FUNCTION LOAD that fails without a reply (a lost connection, a master of a cluster out of
// reach) is no refusal: the call is sent again as FCALL, which may find the function, and the
// backend stays on FCALL.
func TestScriptsLoadLostRedis(t *testing.T) {
	f := newReal(t)
	ctx := context.Background()
	if err := f.b.scripts.load(ctx); err != nil {
		t.Fatal(err)
	}
	calls := &scriptCalls{loadErr: errors.New("connection lost")}
	calls.missing.Store(1)
	f.client.AddHook(calls)
	st := f.open(t, backend.Limits{})
	upsert(t, st, "a", "k", "v", time.Hour)
	if sent := calls.take(); !slices.Equal(sent, []string{"fcall !", "function load !", "fcall"}) {
		t.Fatalf("calls %q, want a failed FCALL, a failed FUNCTION LOAD, then an FCALL", sent)
	}
	if f.b.scripts.evalOnly.Load() {
		t.Fatal("the backend fell back to EVALSHA")
	}
}

// On a server out of memory (maxmemory below what it uses, noeviction), a Get, a snapshot, the
// reads of a new reader and of its pump run, and so do the ticks that expire entries, whose
// readers get the expire events; a write is refused as a whole: nothing of it is written. The
// test starts a redis-server of its own.
func TestScriptsOutOfMemoryRedis(t *testing.T) {
	f := newOwn(t, "--maxmemory-policy", "noeviction")
	st := f.open(t, backend.Limits{})
	ctx := context.Background()
	e := upsert(t, st, "a", "k", "v", time.Hour)
	keys := st.keys("a")
	// An entry of another tenant that expires while the server is out of memory, with a
	// reader open: its pump's tick expires it, and its read delivers the event.
	short := upsert(t, st, "b", "k", "v", 500*time.Millisecond)
	sub, err := st.Subscribe(ctx, "b", backend.SubscribeRequest{After: &backend.Cursor{Epoch: short.Epoch, Seq: short.Version}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := f.client.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := st.Get(ctx, "a", "k"); err != nil || !ok || got.Version != e.Version {
		t.Fatalf("Get out of memory: %+v, %v, %v; want version %d", got, ok, err, e.Version)
	}
	if snap, err := st.Snapshot(ctx, "a", ""); err != nil || len(snap.Entries) != 1 || snap.Entries[0].Version != e.Version {
		t.Fatalf("Snapshot out of memory: %+v, %v; want the entry of version %d", snap, err, e.Version)
	}
	if ev := next(t, sub); ev.Kind != backend.EventExpire || ev.Key != "k" || ev.Version != short.Version+1 {
		t.Fatalf("event out of memory %+v, want the expire of k at version %d", ev, short.Version+1)
	}
	if f.client.HExists(ctx, st.keys("b")[keyState], entryPrefix+"k").Val() {
		t.Fatal("the expired entry is still in the state hash")
	}
	events, fields := f.client.XLen(ctx, keys[keyEvents]).Val(), f.client.HLen(ctx, keys[keyState]).Val()
	_, err = st.Upsert(ctx, "a", backend.UpsertRequest{Key: "k2", Value: []byte("v"), TTL: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("Upsert out of memory: %v, want the server's OOM error", err)
	}
	if e2, f2 := f.client.XLen(ctx, keys[keyEvents]).Val(), f.client.HLen(ctx, keys[keyState]).Val(); e2 != events || f2 != fields {
		t.Fatalf("the refused write left %d events and %d state fields, want %d and %d", e2, f2, events, fields)
	}
	sub, err = st.Subscribe(ctx, "a", backend.SubscribeRequest{After: &backend.Cursor{Epoch: e.Epoch, Seq: e.Version - 1}})
	if err != nil {
		t.Fatalf("Subscribe out of memory: %v", err)
	}
	defer sub.Close()
	if ev := next(t, sub); ev.Version != e.Version {
		t.Fatalf("reader's first event out of memory %+v, want version %d", ev, e.Version)
	}
}

// A user whose ACL refuses the tenants' notice channels (Redis 7's default for a new user,
// acl-pubsub-default resetchannels) writes as any other: the PUBLISH of a write's notice to
// another backend's readers, refused after the writes, does not fail the call (a write that
// failed there had been applied all the same), and those readers get the event from their
// pump's poll; neither does it fail a tick.
func TestScriptsNoticeRefusedRedis(t *testing.T) {
	f := newOn(t, redistest.Client(t), nil) // the readers' backend, polling every 200 ms
	st := f.open(t, backend.Limits{})
	sub := subscribe(t, st, "t", nil)
	writer := New(aclClient(t, "resetchannels"), WithKeyPrefix(f.b.prefix))
	t.Cleanup(func() { writer.Close() })
	wst, err := writer.Open("test", backend.Limits{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Another backend registers as the tenant's watcher when its reader opens: wait for it,
	// or the writes would not publish at all.
	deadline := time.Now().Add(eventWait)
	for f.client.HGet(ctx, st.keys("t")[keyState], metaWatcher).Val() == "" {
		if time.Now().After(deadline) {
			t.Fatal("the reader's backend did not register as the tenant's watcher")
		}
		time.Sleep(time.Millisecond)
	}
	e, err := wst.Upsert(ctx, "t", backend.UpsertRequest{Key: "k", Value: []byte("v"), TTL: 300 * time.Millisecond})
	if err != nil {
		t.Fatalf("Upsert by a user without the channel: %v", err)
	}
	if ev := next(t, sub); ev.Kind != backend.EventUpsert || ev.Version != e.Version {
		t.Fatalf("event %+v, want the upsert at version %d", ev, e.Version)
	}
	// A tick publishes too while another backend watches the tenant: here a registration
	// written by hand, in a tenant without readers, whose entry the writer's tick expires.
	ws := wst.(*store)
	keys := ws.keys("u")
	if _, err := wst.Upsert(ctx, "u", backend.UpsertRequest{Key: "k", Value: []byte("v"), TTL: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	until := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	if err := f.client.HSet(ctx, keys[keyState], metaWatcher, "another", metaWatched, until).Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(eventWait); ; {
		r, err := runTick(ctx, writer.scripts, keys, ws.limits, writer.watcherID)
		if err != nil {
			t.Fatalf("tick by a user without the channel: %v", err)
		}
		if r.expired == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the tick expired nothing")
		}
		time.Sleep(time.Millisecond)
	}
}

// A transaction the server refuses (here a snapshot's HGETALL, which the ACL denies) fails with
// the refusal of its command, which says why, not with EXECABORT, which does not.
func TestTransactionRefusedRedis(t *testing.T) {
	f := newOn(t, aclClient(t, "-hgetall"), nil)
	st := f.open(t, backend.Limits{})
	upsert(t, st, "t", "k", "v", time.Hour)
	_, err := st.Snapshot(context.Background(), "t", "")
	if err == nil || !strings.Contains(err.Error(), "NOPERM") || strings.Contains(err.Error(), "EXECABORT") {
		t.Fatalf("snapshot without HGETALL: %v, want the server's NOPERM", err)
	}
}

// A server that refuses to load the library for now (out of memory) puts FCALL out for no
// longer than that: the calls go with EVALSHA meanwhile, and once loadEvery has passed a call
// loads the library again. (Before, the backend used EVALSHA for good.)
func TestScriptsLoadRefusedForNowRedis(t *testing.T) {
	f := newOwn(t, "--maxmemory-policy", "noeviction")
	st := f.open(t, backend.Limits{})
	ctx := context.Background()
	upsert(t, st, "a", "k", "v", time.Hour) // which loads the library
	time.Sleep(loadEvery)
	for _, cmd := range [][]any{{"function", "flush"}, {"config", "set", "maxmemory", "1"}} {
		if err := f.client.Do(ctx, cmd...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Upsert(ctx, "a", backend.UpsertRequest{Key: "k", Value: []byte("v"), TTL: time.Hour}); err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("Upsert out of memory: %v, want the server's OOM error", err)
	}
	refused := time.Now() // after the refused load
	if f.b.scripts.evalOnly.Load() {
		t.Fatal("a load refused for lack of memory put FCALL out for good")
	}
	if err := f.client.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	upsert(t, st, "a", "k", "v", time.Hour) // with EVALSHA, or after loadEvery with a load
	time.Sleep(time.Until(refused.Add(loadEvery)))
	upsert(t, st, "a", "k", "v", time.Hour)
	if libs := f.client.FunctionList(ctx, redis.FunctionListQuery{}).Val(); len(libs) != 1 || libs[0].Name != libraryName {
		t.Fatalf("libraries %+v after loadEvery, want %s loaded again", libs, libraryName)
	}
}

// A server that still has no function after a load (a cluster's node importing a slot, which
// the load of every master in the slot map does not reach) gets at most one load every
// loadEvery, and the calls meanwhile go with EVALSHA; before, every call loaded the library
// (some 50 KB) on every master, and this test counted 30 loads.
func TestScriptsLoadAtMostEveryRedis(t *testing.T) {
	f := newReal(t)
	st := f.open(t, backend.Limits{})
	calls := &scriptCalls{}
	calls.missing.Store(math.MaxInt64) // every FCALL finds no function
	f.client.AddHook(calls)
	start := time.Now()
	const n = 30
	for i := range n {
		upsert(t, st, "a", fmt.Sprint("k", i), "v", time.Hour)
	}
	elapsed := time.Since(start)
	loads := int64(0)
	for _, c := range calls.take() {
		if strings.HasPrefix(c, "function load") { // " !" when it already exists
			loads++
		}
	}
	if most := 1 + int64(elapsed/loadEvery); loads > most {
		t.Errorf("%d loads of the library for %d upserts in %v, want at most %d", loads, n, elapsed, most)
	}
}
