package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// DefaultKeyPrefix is the key prefix of a Backend made without [WithKeyPrefix].
const DefaultKeyPrefix = "ephemeral"

// maxPumpCalls is the most Redis calls the pumps of a Backend make at once.
const maxPumpCalls = 8

// Defaults of the options.
const (
	DefaultPollInterval = 10 * time.Second
	DefaultReaderBuffer = 1024
)

// Backend is a [backend.Backend] on Redis. It is safe for concurrent use. Make one with [New]
// and Close it when done; Close does not close the Redis client.
type Backend struct {
	client    redis.UniversalClient
	scripts   *scripter // runs the scripts on client
	prefix    string
	pollEvery time.Duration
	// watcherID names the backend's readers in the tenants they watch, for the writes of
	// other backends to publish their notices and its own not (see the package doc,
	// "Notices"): random, made by New.
	watcherID string
	buffer    int
	obs       backend.Observer
	observed  bool // obs was given: a delivered event is worth a clock reading

	closed atomic.Bool
	done   chan struct{}       // closed by Close
	mu     sync.Mutex          // guards stores, pumps, watch and the start of goroutines
	stores map[string]*store   // the open store IDs
	pumps  map[tenantKey]*pump // one per (id, tenant) with readers
	watch  map[string]*pump    // the pumps by their notice channel
	// polling says that poll runs; pumpCalls holds a token per pump call in flight.
	polling   bool
	pumpCalls chan struct{}

	vmu        sync.Mutex     // guards verifying
	verifying  []*pump        // pumps for poll to check soon
	verifyKick chan struct{}  // wakes poll for them
	wg         sync.WaitGroup // running pumps, the hub, polls and write drains

	hmu sync.Mutex // guards hub
	hub *hub       // the pub/sub connection, made with the first pump

	probe probeState // the checks of the hub's connection, by the poll's goroutine (probeHub)

	evictionChecked chan struct{} // closed when checkEviction is done

	opens       batcher[*redis.Client, openReq, openRes] // the reads of new subscriptions, by node (openBatcher)
	scriptCalls batcher[*redis.Client, []any, scriptRes] // the calls of write.lua, by node (scriptBatcher)
}

var _ backend.Backend = (*Backend)(nil)

// tenantKey names one (store ID, tenant) of a Backend.
type tenantKey struct{ id, tenant string }

// Option configures a [Backend].
type Option func(*Backend)

// WithKeyPrefix sets the prefix of every Redis key of the backend (default "ephemeral"). It
// must be non-empty and must not contain '{' or '}', which would break the hash tags; New
// panics otherwise.
func WithKeyPrefix(prefix string) Option { return func(b *Backend) { b.prefix = prefix } }

// WithPollInterval sets how often the backend checks the version of every tenant it has readers
// of (default 10 s; pipelined HMGETs, 500 tenants per round trip): it bounds how soon the
// readers of a tenant where nothing is written notice that its state was lost (a FLUSHALL, a
// restart without persistence). It also bounds, up to a second, how long the backend's
// pub/sub connection may be silent before it is pinged. Events and expiries are never later
// because of it: the pumps read when a notice or an expiry asks.
func WithPollInterval(d time.Duration) Option { return func(b *Backend) { b.pollEvery = d } }

// WithReaderBuffer sets how many of a tenant's latest events the backend keeps in memory for
// its readers, in the log they share (default 1024; events older than 10 s are dropped too). A
// reader further behind catches up from Redis on its own, so a slow reader never holds up the
// others.
func WithReaderBuffer(n int) Option { return func(b *Backend) { b.buffer = n } }

// WithObserver makes the backend report to o what its readers get, its write batches, the
// writes the tenants' state refused, the expiries of its reader pumps and its failed Redis
// calls (see [backend.Observer]). The default reports nothing.
func WithObserver(o backend.Observer) Option { return func(b *Backend) { b.obs = o } }

// New returns a backend that keeps its state in Redis through client: a *redis.Client, a
// Sentinel failover client or a *redis.ClusterClient. It panics if the key prefix is invalid,
// and if client is a *redis.Ring: a Ring subscribes every channel on the shard of the first
// one, so the readers of the tenants on its other shards would miss their notices and wait a
// poll interval for every event (shard with a Redis Cluster instead).
func New(client redis.UniversalClient, opts ...Option) *Backend {
	if _, ok := client.(*redis.Ring); ok {
		panic("redisstore: a *redis.Ring is not supported: it subscribes every channel on the shard of the first, so readers of tenants on its other shards would miss their notices; use a *redis.ClusterClient")
	}
	b := &Backend{
		client:     client,
		scripts:    newScripter(client),
		prefix:     DefaultKeyPrefix,
		pollEvery:  DefaultPollInterval,
		buffer:     DefaultReaderBuffer,
		stores:     make(map[string]*store),
		pumps:      make(map[tenantKey]*pump),
		watch:      make(map[string]*pump),
		done:       make(chan struct{}),
		pumpCalls:  make(chan struct{}, maxPumpCalls),
		verifyKick: make(chan struct{}, 1),

		evictionChecked: make(chan struct{}),
	}
	for _, o := range opts {
		o(b)
	}
	b.opens = openBatcher(b)
	b.scriptCalls = scriptBatcher(b)
	b.observed = b.obs != nil
	if b.obs == nil {
		b.obs = backend.NopObserver{}
	}
	if b.prefix == "" || strings.ContainsAny(b.prefix, "{}") {
		panic(fmt.Sprintf("redisstore: invalid key prefix %q: want non-empty, without '{' or '}'", b.prefix))
	}
	b.pollEvery = max(b.pollEvery, time.Millisecond)
	b.probe.every = max(b.pollEvery, probeFloor)
	b.buffer = max(b.buffer, 1)
	var id [12]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails (Go 1.24+)
	b.watcherID = hex.EncodeToString(id[:])
	return b
}

// probeFloor is the shortest interval of the checks of the hub's connection (see probeHub):
// with a short poll interval, a probe would have less time to come than a busy machine may
// take, and a connection replaced for nothing costs every tenant's subscription.
const probeFloor = 5 * time.Second

// watchFor is how long a registration of the backend's readers in a tenant lasts (see the
// package doc, "Notices"): a minute, or six poll intervals if longer. The checks of every
// poll renew it when half of it is left, so it lapses only if they fail for half of it.
func (b *Backend) watchFor() time.Duration { return max(time.Minute, 6*b.pollEvery) }

// Open returns the store with ID id; see [backend.Backend.Open]. The limits of an ID are those
// of its first Open in this Backend; other Backends on the same Redis are not asked.
func (b *Backend) Open(id string, l backend.Limits) (backend.Store, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, backend.ErrClosed
	}
	if st := b.stores[id]; st != nil {
		if err := backend.SameLimits(id, st.limits, l); err != nil {
			return nil, err
		}
		return st, nil
	}
	st := &store{b: b, id: id, limits: l, base: keyBase(b.prefix, id), maxKept: maxKept}
	st.writes = writeBatcher(st)
	st.snaps = snapBatcher(st)
	if len(b.stores) == 0 {
		b.wg.Add(1)
		go b.checkEviction()
	}
	b.stores[id] = st
	return st, nil
}

// checkEviction reports to the observer, as an error of call "config", every master whose
// maxmemory-policy is not noeviction: every key of a tenant has a TTL, so such a server may
// evict one of them and not the others (see the package doc). A server that does not answer
// CONFIG GET (an ACL, a managed service, an emulation) is not reported; one that cannot be
// reached is asked again, after 100 ms doubling to 10 s, until it answers or the backend is
// closed, so a server down when the first store opens is checked once it is up.
func (b *Backend) checkEviction() {
	defer b.wg.Done()
	defer close(b.evictionChecked)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-b.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var checked sync.Map // the addresses of the masters that answered
	check := func(ctx context.Context, c *redis.Client) error {
		addr := c.Options().Addr
		if _, ok := checked.Load(addr); ok {
			return nil
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		policy, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
		var refused redis.Error
		if err != nil && !errors.As(err, &refused) {
			return err // not reached: asked again
		}
		checked.Store(addr, true)
		if p := policy["maxmemory-policy"]; err == nil && p != "" && p != "noeviction" && !b.closed.Load() {
			b.obs.Error("", "", "config", fmt.Errorf("redisstore: the server at %s has maxmemory-policy %s, which may evict one key of a tenant and not the others (an expiry set evicted alone goes unnoticed): set it to noeviction", addr, p))
		}
		return nil
	}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		var err error
		switch c := b.client.(type) {
		case *redis.ClusterClient:
			err = c.ForEachMaster(ctx, check)
		case *redis.Client:
			err = check(ctx, c)
		}
		if err == nil || !sleep(ctx, wait) {
			return
		}
	}
}

// Close stops the reader pumps, ends every subscription (Next returns backend.ErrClosed) and
// closes the backend's pub/sub connection; later calls fail with backend.ErrClosed. It waits
// for the pumps to stop. The Redis client stays open.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.mu.Lock()
	pumps := b.pumps
	b.pumps = make(map[tenantKey]*pump)
	b.watch = make(map[string]*pump)
	b.mu.Unlock()
	for _, p := range pumps {
		p.stop()
	}
	close(b.done)
	b.closeHub()
	b.wg.Wait()
	return nil
}

// failed reports err, the error of call on the tenant k, to the observer unless it is nil or
// the context of the call ended, and tells a cluster client to reload its slots when err is a
// lost connection (see lost).
func (b *Backend) failed(k tenantKey, call string, err error) {
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		b.obs.Error(k.id, k.tenant, call, err)
		b.lost(err)
	}
}

// lost tells a cluster client to reload its map of the cluster's slots when err says that a
// node could not be reached (a connection refused, reset, closed or timed out; not a reply of
// the server): the node may be a master that died and whose replica has taken over. go-redis
// reloads the map on a MOVED reply or when it is ClusterOptions.ClusterStateReloadInterval old
// (60 s by default), and goes on calling the dead master until then; a script's call, which
// it does not retry (see onceIntsCmd), would fail as long. It reloads in the background, at
// most once every 200 ms however often it is told.
func (b *Backend) lost(err error) {
	c, ok := b.client.(*redis.ClusterClient)
	if !ok || err == nil {
		return
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		c.ReloadState(context.Background())
	}
}

func (b *Backend) check() error {
	if b.closed.Load() {
		return backend.ErrClosed
	}
	return nil
}

// store is one store ID of a Backend: a [backend.Store].
type store struct {
	b      *Backend
	id     string
	limits backend.Limits
	base   string // the start of its key names, up to the tenant (see keyBase)
	// snapSize is the size of the store's last snapshot reply (of any tenant): a reply buffer
	// new from the pool (which drops its buffers at garbage collections) is made that large at
	// once, up to maxPooledReply, rather than grown from nothing as the reply is read (a
	// megabyte per 10,000 entries). A typed snapshot of 10,000 entries in the load test took
	// 2–26 % less client CPU, pair by pair (docs/PERFORMANCE.md).
	snapSize atomic.Int64
	writes   batcher[string, writeOp, writeResult]      // by tenant (writeBatcher)
	snaps    batcher[snapKey, []backend.Entry, snapRes] // by tenant and prefix (snapBatcher)
	tenants  [tenantSlots]atomic.Pointer[tenantSlot]
	kept     atomic.Int64 // the values kept by the tenants' slots (see memoCache)
	maxKept  int64        // the most kept: maxKept (tests lower it)
	// forks counts the times a pump of the store found its tenant gone back within an epoch
	// (see pump.step): a write reads it before it is sent, so that its pump knows whether it
	// was out then (see pump.noteWrites).
	forks atomic.Uint64
}

// tenantSlots is the number of tenants a store keeps a tenantSlot of, each in the slot its
// name hashes to: enough for the rooms of a presence server to stay (a tenant each), at 32
// kilobytes of pointers a store and a few hundred bytes a tenant kept.
const tenantSlots = 4096

// tenantSlot is what a store keeps of a tenant it used lately, in st.tenants: its keys, made
// once rather than at every call (five allocations), and the epoch its last write returned,
// which the next write sends so that the script leaves it out of its reply (see writeOps),
// and the memos of the values its snapshots read (see memoCache). A slot is not changed once
// stored but for its memos; a tenant whose name hashes to the same slot replaces it.
type tenantSlot struct {
	tenant string
	keys   []string
	epoch  string                      // "" until a write returned one
	last   atomic.Int64                // the server's time (ms) of the latest write in epoch that succeeded
	at     *atomic.Pointer[tenantSlot] // where it is kept, in st.tenants
	memos  atomic.Pointer[memoCache]   // nil until a snapshot
}

// slotSeed hashes tenants to their slots.
var slotSeed = maphash.MakeSeed()

// slot returns the slot of tenant, stored anew when it held another tenant.
func (st *store) slot(tenant string) *tenantSlot {
	at := &st.tenants[maphash.String(slotSeed, tenant)%tenantSlots]
	for {
		old := at.Load()
		if old != nil && old.tenant == tenant {
			return old
		}
		s := &tenantSlot{tenant: tenant, keys: tenantKeys(st.base, tenant), at: at}
		if at.CompareAndSwap(old, s) {
			if old != nil {
				old.dropMemos(st)
			}
			return s
		}
	}
}

// keys returns the keys of tenant, which the caller must not change.
func (st *store) keys(tenant string) []string { return st.slot(tenant).keys }

// Upsert implements [backend.Store]. It is applied as [store.write] says: alone, or in a batch
// of the tenant's concurrent writes. It returns when it is applied or, if it waits for a batch,
// when ctx ends, whichever comes first. An upsert whose ctx ends before it is sent is not
// applied; once sent, it may be applied, as any Redis command may be.
func (st *store) Upsert(ctx context.Context, tenant string, req backend.UpsertRequest) (backend.Entry, error) {
	if err := st.b.check(); err != nil {
		return backend.Entry{}, err
	}
	r := st.write(ctx, tenant, writeOp{code: opUpsert, key: req.Key, value: req.Value, ttl: req.TTL, cond: req.Cond})
	if r.err != nil {
		return backend.Entry{}, wrap("upsert", req.Key, r.err)
	}
	return backend.Entry{Key: req.Key, Value: req.Value, Version: r.version, Epoch: r.epoch, CreatedAt: r.createdAt, UpdatedAt: r.updatedAt, ExpiresAt: r.expiresAt}, nil
}

// Touch implements [backend.Store]. It is batched as Upsert is, quiet or not.
func (st *store) Touch(ctx context.Context, tenant string, req backend.TouchRequest) (backend.TouchResult, error) {
	if err := st.b.check(); err != nil {
		return backend.TouchResult{}, err
	}
	code := opTouch
	if req.Quiet {
		code = opTouchQuiet
	}
	r := st.write(ctx, tenant, writeOp{code: code, key: req.Key, ttl: req.TTL, cond: req.Cond})
	if r.err != nil {
		return backend.TouchResult{}, wrap("touch", req.Key, r.err)
	}
	return backend.TouchResult{OK: r.ok, Version: r.version, ExpiresAt: r.expiresAt}, nil
}

// TouchMany implements [backend.Store]. Its touches go in the tenant's write batches (see
// store.write) in groups of up to maxBatch, one after the other, each whole in one script
// call (batcher.doGroup): atomic and in order. A request of up to 64 keys is one atomic
// write. A group that fails ends the call: the groups after it are not sent.
func (st *store) TouchMany(ctx context.Context, tenant string, req backend.TouchManyRequest) ([]backend.TouchResult, error) {
	if err := st.b.check(); err != nil {
		return nil, err
	}
	code := opTouch
	if req.Quiet {
		code = opTouchQuiet
	}
	ops := make([]writeOp, len(req.Keys))
	for i, k := range req.Keys {
		ops[i] = writeOp{code: code, key: k, ttl: req.TTL}
	}
	res := make([]backend.TouchResult, 0, len(ops))
	for len(res) < len(ops) {
		from := len(res)
		for i, r := range st.writes.doGroup(ctx, tenant, ops[from:min(from+maxBatch, len(ops))]) {
			if r.err != nil {
				return nil, wrap("touch", req.Keys[from+i], r.err)
			}
			res = append(res, backend.TouchResult{OK: r.ok, Version: r.version, ExpiresAt: r.expiresAt})
		}
	}
	return res, nil
}

// Remove implements [backend.Store]. It is batched as Upsert is.
func (st *store) Remove(ctx context.Context, tenant string, req backend.RemoveRequest) (bool, error) {
	if err := st.b.check(); err != nil {
		return false, err
	}
	r := st.write(ctx, tenant, writeOp{code: opRemove, key: req.Key, value: []byte(req.Reason), cond: req.Cond})
	if r.err != nil {
		return false, wrap("remove", req.Key, r.err)
	}
	return r.ok, nil
}

// Get implements [backend.Store].
func (st *store) Get(ctx context.Context, tenant, key string) (backend.Entry, bool, error) {
	if err := st.b.check(); err != nil {
		return backend.Entry{}, false, err
	}
	e, ok, err := runGet(ctx, st.b.scripts, st.keys(tenant), key)
	st.b.failed(tenantKey{st.id, tenant}, "get", err)
	return e, ok, err
}

// Snapshot implements [backend.Store]. One MULTI/EXEC transaction reads the entries, the
// tenant's meta and the server's time; the entries are then filtered by expiry and sorted
// here, in byte order. A transaction rather than a script: Lua would copy the 10,000 entries
// twice. HGETALL's reply is read as its bytes, into a buffer reused across snapshots, and
// parsed here (see parseSnapshot); the entries get the bytes the store kept of their values, or
// copies of those it did not (see keepValues). A tenant without meta (new, or lost) gets one
// from the open script, batched with the opens of readers (see openBatcher); a new one (no state
// hash) whose epoch has no write yet is then known to be empty, without a second transaction:
// a presence page's snapshot of a room nobody joined yet takes two round trips instead of three.
func (st *store) Snapshot(ctx context.Context, tenant, prefix string) (backend.Snapshot, error) {
	return st.AppendSnapshot(ctx, tenant, prefix, nil)
}

// AppendSnapshot implements [backend.SnapshotAppender]: the typed layer reads its snapshots into
// slices it reuses. Concurrent snapshots of one tenant and prefix share reads (see
// snapBatcher).
func (st *store) AppendSnapshot(ctx context.Context, tenant, prefix string, dst []backend.Entry) (backend.Snapshot, error) {
	if err := st.b.check(); err != nil {
		return backend.Snapshot{}, err
	}
	res := st.snaps.do(ctx, snapKey{tenant, prefix}, dst)
	return res.snap, res.err
}

// snapKey is what snapshots that may share a read have in common.
type snapKey struct{ tenant, prefix string }

// snapRes is the result of a snapshot.
type snapRes struct {
	snap backend.Snapshot
	err  error
}

// snapBatcher returns the batcher of st's snapshots, by tenant and prefix: a snapshot with none
// of its tenant and prefix in flight reads at once, on the caller's goroutine; those that
// arrive while one is in flight wait, and then share one read, made after each was asked for
// (so it is as fresh as one of its own), each with the entries appended to its own dst: a
// snapshot that meets one in flight takes up to two round trips, and any number of them one
// read. When the presence example's 5,000 pages of one room open their streams at once, their
// snapshots send 14–76 HGETALLs instead of 5,001–5,700 (docs/PERFORMANCE.md).
func snapBatcher(st *store) batcher[snapKey, []backend.Entry, snapRes] {
	return batcher[snapKey, []backend.Entry, snapRes]{
		max:   math.MaxInt, // they share one read, however many
		depth: 1,
		one: func(ctx context.Context, k snapKey, dst []backend.Entry) snapRes {
			snap, err := st.snapshot(ctx, k.tenant, k.prefix, dst)
			return snapRes{snap, err}
		},
		batch: func(k snapKey, calls []*call[[]backend.Entry, snapRes]) {
			ctx, done := batchContext(calls)
			defer done()
			snap, err := st.snapshot(ctx, k.tenant, k.prefix, nil)
			for _, c := range calls {
				if err != nil {
					c.res.err = err
				} else {
					// Entries of their own; the keys, values (read-only) and memos shared.
					dst := c.req
					if dst == nil {
						dst = make([]backend.Entry, 0, len(snap.Entries)) // not nil when empty
					}
					c.res.snap = backend.Snapshot{Entries: append(dst, snap.Entries...), Cursor: snap.Cursor}
				}
				close(c.done)
			}
		},
		ended: func(err error) snapRes { return snapRes{err: err} },
		spawn: st.b.spawn,
	}
}

// snapshot reads a snapshot of the tenant's keys with prefix, its entries appended to dst.
func (st *store) snapshot(ctx context.Context, tenant, prefix string, dst []backend.Entry) (backend.Snapshot, error) {
	slot := st.slot(tenant)
	keys := slot.keys
	for range 3 {
		var now *redis.TimeCmd
		buf := getReplyBuffer()
		buf.b = slices.Grow(buf.b, int(min(st.snapSize.Load(), maxPooledReply)))
		read := func(p redis.Pipeliner) error {
			now = p.Time(ctx)
			return p.Process(ctx, rawCmd(ctx, buf, "hgetall", keys[keyState]))
		}
		cmds, err := st.b.client.TxPipelined(ctx, read)
		if refusedOOM(cmds) {
			// Sent alone, on the tenant's node, the two run on a server out of memory: the
			// hash is read at once all the same, and the time is taken just before.
			var pipe redis.Cmdable = st.b.client
			if n := st.b.node(ctx, keys[keyState]); n != nil {
				pipe = n
			}
			cmds, err = pipe.Pipelined(ctx, read)
		}
		err = txError(cmds, err)
		var snap backend.Snapshot
		failed := err != nil // the transaction
		if !failed {
			st.snapSize.Store(int64(len(buf.b)))
			snap, err = parseSnapshot(buf.b, now.Val().UnixMilli(), prefix, dst, &buf.sc)
			_, failed = err.(replyError) // HGETALL's error reply: WRONGTYPE
			if err == nil {
				st.keepValues(slot, snap.Cursor.Epoch, snap.Entries[len(dst):], prefix == "")
			}
			// Only a buffer that the call is done with is reused: after a failed call, a
			// reader of the connection might still write into it.
			putReplyBuffer(buf)
		}
		if failed {
			st.b.failed(tenantKey{st.id, tenant}, "snapshot", err)
			if werr := wrongType(err, keyState); werr != nil {
				err = werr
			}
			return backend.Snapshot{}, fmt.Errorf("redisstore: snapshot: %w", scriptError(err))
		}
		if noState, noMeta := errors.Is(err, errNoState), errors.Is(err, errNoMeta); noState || noMeta {
			r, err := st.b.openRead(ctx, keys, st.limits)
			if err != nil {
				st.b.failed(tenantKey{st.id, tenant}, "read", err)
				return backend.Snapshot{}, fmt.Errorf("redisstore: snapshot: %w", err)
			}
			if noState && r.head == 0 {
				// A new tenant, whose meta the read made (or found made by another): nothing
				// was written in its epoch, so it has no entry at version 0, and a second
				// transaction would only find that again.
				if dst == nil {
					dst = []backend.Entry{} // not nil when empty, as before
				}
				return backend.Snapshot{Entries: dst, Cursor: backend.Cursor{Epoch: r.epoch}}, nil
			}
			continue
		}
		if err != nil {
			return backend.Snapshot{}, fmt.Errorf("redisstore: snapshot: %w", err)
		}
		return snap, nil
	}
	return backend.Snapshot{}, errors.New("redisstore: snapshot: the tenant's meta keeps disappearing")
}
