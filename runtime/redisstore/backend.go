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

	closed atomic.Bool
	mu     sync.Mutex          // guards stores, pumps and the start of goroutines
	stores map[string]*store   // the open store IDs
	pumps  map[tenantKey]*pump // one per (id, tenant) with readers
	wg     sync.WaitGroup      // running pumps and upsert drains

	qmu    sync.Mutex                 // guards queues and their fields
	queues map[tenantKey]*upsertQueue // one per (id, tenant) with upserts in flight
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

// WithReaderBuffer sets how many events a subscription buffers (default 1024). A reader whose
// buffer is full catches up from Redis later, so a slow reader never holds up the others.
func WithReaderBuffer(n int) Option { return func(b *Backend) { b.buffer = n } }

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
		queues:   make(map[tenantKey]*upsertQueue),
	}
	for _, o := range opts {
		o(b)
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

// Upsert implements [backend.Store]. Concurrent upserts to one tenant are applied in batches,
// one script call each (see upsertQueue); a single upsert is a batch of one. Upsert returns
// when its batch is applied or when ctx ends, whichever comes first. An upsert whose ctx ends
// before its batch is sent is not applied; once sent, it may be applied, as any Redis command
// may be.
func (st *store) Upsert(ctx context.Context, tenant string, req backend.UpsertRequest) (backend.Entry, error) {
	if err := st.b.check(); err != nil {
		return backend.Entry{}, err
	}
	call := &upsertCall{ctx: ctx, req: req, done: make(chan struct{})}
	st.enqueue(tenant, call)
	select {
	case <-call.done:
		return call.entry, call.err
	case <-ctx.Done():
		return backend.Entry{}, fmt.Errorf("redisstore: upsert %q: %w", req.Key, ctx.Err())
	}
}

// Touch implements [backend.Store].
func (st *store) Touch(ctx context.Context, tenant string, req backend.TouchRequest) (backend.TouchResult, error) {
	if err := st.b.check(); err != nil {
		return backend.TouchResult{}, err
	}
	r, err := runTouch(ctx, st.b.client, st.keys(tenant), st.limits, req)
	if r.OK {
		st.b.noteVersion(tenantKey{st.id, tenant}, r.Version)
	}
	return r, err
}

// Remove implements [backend.Store].
func (st *store) Remove(ctx context.Context, tenant string, req backend.RemoveRequest) (bool, error) {
	if err := st.b.check(); err != nil {
		return false, err
	}
	return runRemove(ctx, st.b.client, st.keys(tenant), st.limits, req)
}

// Get implements [backend.Store].
func (st *store) Get(ctx context.Context, tenant, key string) (backend.Entry, bool, error) {
	if err := st.b.check(); err != nil {
		return backend.Entry{}, false, err
	}
	return runGet(ctx, st.b.client, st.keys(tenant), key)
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
			return backend.Snapshot{}, fmt.Errorf("redisstore: snapshot: %w", err)
		}
		if _, ok := all.Val()[metaEpoch]; !ok {
			if _, err := runRead(ctx, st.b.client, keys, st.limits, backend.Cursor{}, 0); err != nil {
				return backend.Snapshot{}, fmt.Errorf("redisstore: snapshot: %w", err)
			}
			continue
		}
		snap, err := parseSnapshot(all.Val(), now.Val().UnixMilli(), prefix)
		if err != nil {
			return backend.Snapshot{}, fmt.Errorf("redisstore: snapshot: %w", err)
		}
		return snap, nil
	}
	return backend.Snapshot{}, errors.New("redisstore: snapshot: the tenant's meta keeps disappearing")
}
