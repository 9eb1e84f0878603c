package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// DefaultKeyPrefix is the key prefix of a Backend made without [WithKeyPrefix].
const DefaultKeyPrefix = "ephemeral"

// Defaults of the options.
const (
	DefaultMaxBlock     = time.Second
	DefaultReaderBuffer = 1024
)

// Backend is a [backend.Backend] on Redis. It is safe for concurrent use. Make one with [New]
// and Close it when done; Close does not close the Redis client.
type Backend struct {
	client   redis.UniversalClient
	prefix   string
	maxBlock time.Duration
	buffer   int
	obs      backend.Observer
	observed bool // obs was given: a delivered event is worth a clock reading

	closed atomic.Bool
	mu     sync.Mutex          // guards stores, pumps and the start of goroutines
	stores map[string]*store   // the open store IDs
	pumps  map[tenantKey]*pump // one per (id, tenant) with readers
	wg     sync.WaitGroup      // running pumps and write drains

	qmu    sync.Mutex                // guards queues and their fields
	queues map[tenantKey]*writeQueue // one per (id, tenant) with a write in flight
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

// WithMaxBlock bounds how long a reader pump blocks in one XREAD (default 1 s). It bounds how
// soon a pump notices that the tenant's state was lost (a FLUSHALL, a restart without
// persistence) and how long Close waits for the pumps; expiries are never later because of it.
func WithMaxBlock(d time.Duration) Option { return func(b *Backend) { b.maxBlock = d } }

// WithReaderBuffer sets how many of a tenant's latest events the backend keeps in memory for
// its readers, in the log they share (default 1024; events older than 10 s are dropped too). A
// reader further behind catches up from Redis on its own, so a slow reader never holds up the
// others.
func WithReaderBuffer(n int) Option { return func(b *Backend) { b.buffer = n } }

// WithObserver makes the backend report to o what its readers get, its write batches, the
// expiries of its reader pumps and its failed Redis calls (see [backend.Observer]). The
// default reports nothing.
func WithObserver(o backend.Observer) Option { return func(b *Backend) { b.obs = o } }

// New returns a backend that keeps its state in Redis through client: a *redis.Client, a
// Sentinel failover client or a *redis.ClusterClient. It panics if the key prefix is invalid.
func New(client redis.UniversalClient, opts ...Option) *Backend {
	b := &Backend{
		client:   client,
		prefix:   DefaultKeyPrefix,
		maxBlock: DefaultMaxBlock,
		buffer:   DefaultReaderBuffer,
		stores:   make(map[string]*store),
		pumps:    make(map[tenantKey]*pump),
		queues:   make(map[tenantKey]*writeQueue),
	}
	for _, o := range opts {
		o(b)
	}
	b.observed = b.obs != nil
	if b.obs == nil {
		b.obs = backend.NopObserver{}
	}
	if b.prefix == "" || strings.ContainsAny(b.prefix, "{}") {
		panic(fmt.Sprintf("redisstore: invalid key prefix %q: want non-empty, without '{' or '}'", b.prefix))
	}
	b.maxBlock = max(b.maxBlock, time.Millisecond)
	b.buffer = max(b.buffer, 1)
	return b
}

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
	st := &store{b: b, id: id, limits: l, base: keyBase(b.prefix, id)}
	b.stores[id] = st
	return st, nil
}

// Close stops the reader pumps and ends every subscription (Next returns backend.ErrClosed);
// later calls fail with backend.ErrClosed. It waits for the pumps to stop, at most about the
// max block time. The Redis client stays open.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.mu.Lock()
	pumps := b.pumps
	b.pumps = make(map[tenantKey]*pump)
	b.mu.Unlock()
	for _, p := range pumps {
		p.stop()
	}
	b.wg.Wait()
	return nil
}

// failed reports err, the error of call on the tenant k, to the observer unless it is nil or
// the context of the call ended.
func (b *Backend) failed(k tenantKey, call string, err error) {
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		b.obs.Error(k.id, k.tenant, call, err)
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
}

func (st *store) keys(tenant string) []string { return tenantKeys(st.base, tenant) }

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
	e, ok, err := runGet(ctx, st.b.client, st.keys(tenant), key)
	st.b.failed(tenantKey{st.id, tenant}, "get", err)
	return e, ok, err
}

// Snapshot implements [backend.Store]. One MULTI/EXEC transaction reads the entries, the
// tenant's meta and the server's time; the entries are then filtered by expiry and sorted
// here, in byte order. A transaction rather than a script: Lua would copy the 10,000 entries
// twice. A tenant without meta (new, or lost) gets one from the read script first.
func (st *store) Snapshot(ctx context.Context, tenant, prefix string) (backend.Snapshot, error) {
	if err := st.b.check(); err != nil {
		return backend.Snapshot{}, err
	}
	keys := st.keys(tenant)
	for range 3 {
		var now *redis.TimeCmd
		var all *redis.MapStringStringCmd
		_, err := st.b.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			now = p.Time(ctx)
			all = p.HGetAll(ctx, keys[keyState])
			return nil
		})
		if err != nil {
			st.b.failed(tenantKey{st.id, tenant}, "snapshot", err)
			return backend.Snapshot{}, fmt.Errorf("redisstore: snapshot: %w", scriptError(err))
		}
		snap, err := parseSnapshot(all.Val(), now.Val().UnixMilli(), prefix)
		if errors.Is(err, errNoMeta) {
			if _, err := runRead(ctx, st.b.client, keys, st.limits, backend.Cursor{}, 0); err != nil {
				st.b.failed(tenantKey{st.id, tenant}, "read", err)
				return backend.Snapshot{}, fmt.Errorf("redisstore: snapshot: %w", err)
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
