package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime"
	"github.com/redis/go-redis/v9"
)

// DefaultKeyPrefix is the key prefix of a Backend made without [WithKeyPrefix].
const DefaultKeyPrefix = "ephemeral"

// Defaults of the options.
const (
	DefaultMaxBlock     = time.Second
	DefaultReaderBuffer = 1024
)

// Backend is a [runtime.Backend] on Redis. It is safe for concurrent use. Make one with [New]
// and Close it when done; Close does not close the Redis client.
type Backend struct {
	client   redis.UniversalClient
	prefix   string
	maxBlock time.Duration
	buffer   int

	closed atomic.Bool
	mu     sync.Mutex        // guards pumps
	pumps  map[pumpKey]*pump // one per (id, tenant) with readers
	wg     sync.WaitGroup    // running pumps
}

var _ runtime.Backend = (*Backend)(nil)

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
		pumps:    make(map[pumpKey]*pump),
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

// Close stops the reader pumps and ends every subscription (Next returns runtime.ErrClosed);
// later calls fail with runtime.ErrClosed. It waits for the pumps to stop, at most about the
// max block time. The Redis client stays open.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.mu.Lock()
	pumps := b.pumps
	b.pumps = make(map[pumpKey]*pump)
	b.mu.Unlock()
	for _, p := range pumps {
		p.stop()
	}
	b.wg.Wait()
	return nil
}

func (b *Backend) check() error {
	if b.closed.Load() {
		return runtime.ErrClosed
	}
	return nil
}

func (b *Backend) keys(s runtime.Scope) []string { return tenantKeys(b.prefix, s.ID, s.Tenant) }

// common returns the first arguments of the writing scripts: an epoch candidate, the event
// retention in milliseconds and the most events kept.
func common(l runtime.Limits, extra ...any) []any {
	return append([]any{runtime.NewEpoch(), l.EventRetention.Milliseconds(), l.MaxEvents}, extra...)
}

// Upsert implements [runtime.Backend].
func (b *Backend) Upsert(ctx context.Context, s runtime.Scope, req runtime.UpsertRequest) (runtime.RawEntry, error) {
	if err := b.check(); err != nil {
		return runtime.RawEntry{}, err
	}
	l := s.Limits.WithDefaults()
	args := common(l, req.Key, req.Value, req.TTL.Milliseconds(), int(req.Cond.Kind), req.Cond.Version, l.MaxEntries)
	res, err := upsertScript.Run(ctx, b.client, b.keys(s), args...).Int64Slice()
	if err != nil {
		return runtime.RawEntry{}, fmt.Errorf("redisstore: upsert %q: %w", req.Key, err)
	}
	switch {
	case res[0] == -1:
		return runtime.RawEntry{}, fmt.Errorf("redisstore: upsert %q: %w", req.Key, runtime.ErrConflict)
	case res[0] == -2:
		return runtime.RawEntry{}, fmt.Errorf("redisstore: upsert %q: %w: limit %d", req.Key, runtime.ErrCapacity, l.MaxEntries)
	case len(res) != 5:
		return runtime.RawEntry{}, fmt.Errorf("redisstore: upsert %q: unexpected reply %v", req.Key, res)
	}
	return runtime.RawEntry{
		Key:       req.Key,
		Value:     req.Value,
		Version:   uint64(res[1]),
		CreatedAt: time.UnixMilli(res[2]),
		UpdatedAt: time.UnixMilli(res[3]),
		ExpiresAt: time.UnixMilli(res[4]),
	}, nil
}

// Touch implements [runtime.Backend].
func (b *Backend) Touch(ctx context.Context, s runtime.Scope, req runtime.TouchRequest) (runtime.TouchResult, error) {
	if err := b.check(); err != nil {
		return runtime.TouchResult{}, err
	}
	quiet := 0
	if req.Quiet {
		quiet = 1
	}
	args := common(s.Limits.WithDefaults(), req.Key, req.TTL.Milliseconds(), quiet, int(req.Cond.Kind), req.Cond.Version)
	res, err := touchScript.Run(ctx, b.client, b.keys(s), args...).Int64Slice()
	if err != nil {
		return runtime.TouchResult{}, fmt.Errorf("redisstore: touch %q: %w", req.Key, err)
	}
	switch {
	case res[0] == -1:
		return runtime.TouchResult{}, fmt.Errorf("redisstore: touch %q: %w", req.Key, runtime.ErrConflict)
	case res[0] == 0:
		return runtime.TouchResult{}, nil
	case len(res) != 3:
		return runtime.TouchResult{}, fmt.Errorf("redisstore: touch %q: unexpected reply %v", req.Key, res)
	}
	return runtime.TouchResult{OK: true, Version: uint64(res[1]), ExpiresAt: time.UnixMilli(res[2])}, nil
}

// Remove implements [runtime.Backend].
func (b *Backend) Remove(ctx context.Context, s runtime.Scope, req runtime.RemoveRequest) (bool, error) {
	if err := b.check(); err != nil {
		return false, err
	}
	args := common(s.Limits.WithDefaults(), req.Key, req.Reason, int(req.Cond.Kind), req.Cond.Version)
	res, err := removeScript.Run(ctx, b.client, b.keys(s), args...).Int64()
	if err != nil {
		return false, fmt.Errorf("redisstore: remove %q: %w", req.Key, err)
	}
	if res == -1 {
		return false, fmt.Errorf("redisstore: remove %q: %w", req.Key, runtime.ErrConflict)
	}
	return res == 1, nil
}

// Get implements [runtime.Backend].
func (b *Backend) Get(ctx context.Context, s runtime.Scope, key string) (runtime.RawEntry, bool, error) {
	if err := b.check(); err != nil {
		return runtime.RawEntry{}, false, err
	}
	stored, err := getScript.Run(ctx, b.client, b.keys(s), key).Text()
	if errors.Is(err, redis.Nil) {
		return runtime.RawEntry{}, false, nil
	}
	if err != nil {
		return runtime.RawEntry{}, false, fmt.Errorf("redisstore: get %q: %w", key, err)
	}
	e, err := parseStored(key, stored)
	if err != nil {
		return runtime.RawEntry{}, false, err
	}
	return e, true, nil
}

// Snapshot implements [runtime.Backend]. One script returns the entries and the position of
// the same instant; the entries are filtered by expiry and sorted here.
func (b *Backend) Snapshot(ctx context.Context, s runtime.Scope, prefix string) (runtime.RawSnapshot, error) {
	if err := b.check(); err != nil {
		return runtime.RawSnapshot{}, err
	}
	l := s.Limits.WithDefaults()
	res, err := snapshotScript.Run(ctx, b.client, b.keys(s), runtime.NewEpoch(), l.EventRetention.Milliseconds(), prefix).Slice()
	if err != nil {
		return runtime.RawSnapshot{}, fmt.Errorf("redisstore: snapshot: %w", err)
	}
	snap, err := parseSnapshot(res)
	if err != nil {
		return runtime.RawSnapshot{}, fmt.Errorf("redisstore: snapshot: %w", err)
	}
	return snap, nil
}

func parseSnapshot(res []any) (runtime.RawSnapshot, error) {
	if len(res) != 4 {
		return runtime.RawSnapshot{}, fmt.Errorf("unexpected reply of %d elements", len(res))
	}
	epoch, _ := res[0].(string)
	seq, ok1 := res[1].(int64)
	now, ok2 := res[2].(int64)
	flat, ok3 := res[3].([]any)
	if !runtime.ValidEpoch(epoch) || !ok1 || !ok2 || !ok3 || len(flat)%2 != 0 {
		return runtime.RawSnapshot{}, fmt.Errorf("unexpected reply %v", res[:3])
	}
	entries := make([]runtime.RawEntry, 0, len(flat)/2)
	for i := 0; i < len(flat); i += 2 {
		key, _ := flat[i].(string)
		stored, _ := flat[i+1].(string)
		e, err := parseStored(key, stored)
		if err != nil {
			return runtime.RawSnapshot{}, err
		}
		if e.ExpiresAt.UnixMilli() > now {
			entries = append(entries, e)
		}
	}
	slices.SortFunc(entries, func(a, b runtime.RawEntry) int { return cmp.Compare(a.Key, b.Key) })
	return runtime.RawSnapshot{Entries: entries, Cursor: runtime.Cursor{Epoch: epoch, Seq: uint64(seq)}}, nil
}
