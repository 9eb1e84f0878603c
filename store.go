package ephemeral

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// Codec encodes and decodes values of type T as JSON. ephemeralgen generates one per annotated
// type; it must not use reflection.
type Codec[T any] interface {
	// Encode appends the JSON encoding of *v to dst and returns the extended buffer.
	Encode(dst []byte, v *T) ([]byte, error)
	// Decode parses the JSON in src into *v.
	Decode(src []byte, v *T) error
}

// Cloner is the optional method of a [Codec] that copies values without a decode; every codec
// ephemeralgen generates has it. Clone makes *dst a deep copy of *src, overwriting all of
// *dst: no slice, map or pointer of *dst shares memory with *src. A store calls it only with
// values its codec decoded, which hold no cycle; ephemeralgen's Clone does not look for one (a
// value that holds itself would make it recurse until the stack overflows).
//
// The readers and mirrors of a store decode each event once and give each reader a Clone of
// the value (see [Reader]); with a codec that has no Clone, each of them decodes the value,
// unless T is flat (see the package doc): flat values are copied by assignment, Clone or not.
type Cloner[T any] interface {
	Clone(dst, src *T)
}

// BatchCloner is the optional method of a [Codec] that deep-copies many values one after the
// other: CloneFunc returns a function that does what Clone does, for one goroutine's run of
// copies, such as a snapshot's. ephemeralgen generates it for a struct whose only references
// are slices of values copied by assignment (say, a []string): the function carves the copies'
// slices from blocks of about 4 KiB that they share: a memstore snapshot of 10,000 values with
// a slice of two strings each made 97 allocations instead of 10,018 (BenchmarkSnapshot10k). A
// value kept from a snapshot keeps its block, and the other values' slices in it, alive. A
// store uses CloneFunc only when the codec has Clone too (see [Cloner]).
type BatchCloner[T any] interface {
	CloneFunc() func(dst, src *T)
}

// DefaultTenant is the tenant of a store whose Config leaves Tenant empty.
const DefaultTenant = "default"

// Config describes a store of values T under keys K. ephemeralgen writes one per annotated type
// (in New<T>Store); a store written by hand fills it in itself.
type Config[K, T any] struct {
	ID     string        // the store ID, 1 to MaxIDBytes bytes of UTF-8; required
	TTL    time.Duration // the default time-to-live; required, > 0
	Tenant string        // the default tenant; "" means DefaultTenant
	Limits Limits        // zero fields take the defaults
	Codec  Codec[T]      // required
	// Key converts keys to their string form and back; required, but for a store of plain
	// string keys (K is string), where the zero KeyCodec means StringKeys.
	Key KeyCodec[K]
	// KeyOf returns the key of a value, for Store.Put; optional.
	KeyOf func(T) K
}

// StoreOption overrides a setting of a store's [Config]; generated constructors take them so
// that the defaults from a directive can be overridden.
type StoreOption struct{ apply func(*settings) error }

// settings are the parts of a Config that StoreOptions change.
type settings struct {
	ttl    time.Duration
	tenant string
	limits Limits
}

// WithDefaultTTL sets the store's default TTL (rounded up to a whole millisecond).
func WithDefaultTTL(ttl time.Duration) StoreOption {
	return StoreOption{func(s *settings) error { s.ttl = ttl; return nil }}
}

// WithDefaultTenant sets the store's default tenant, 1 to [MaxTenantBytes] bytes; an empty one
// is an error wrapping [ErrInvalidTenant].
func WithDefaultTenant(t string) StoreOption {
	return StoreOption{func(s *settings) error {
		s.tenant = t
		return checkTenant(t)
	}}
}

// WithLimits sets the store's limits; zero fields take the defaults.
func WithLimits(l Limits) StoreOption {
	return StoreOption{func(s *settings) error { s.limits = l; return nil }}
}

// Store is a typed store of values T under keys K: one store ID on a [Backend], partitioned by
// tenant. It is safe for concurrent use and cheap: any number of stores may share one backend.
// Generated stores are aliases of it, such as
//
//	type PresenceStore = ephemeral.Store[PresenceKey, Presence]
type Store[K, T any] struct {
	b     backend.Store
	codec Codec[T]
	key   KeyCodec[K]
	keyOf func(T) K
	clone func(dst, src *T) // the codec's Cloner, assignment when flat, or nil
	// cloneFunc is the codec's BatchCloner, or nil (and nil when T is flat).
	cloneFunc func() func(dst, src *T)
	// flat says that a T holds nothing a caller could modify in place (see isFlat): values
	// are copied by assignment, with no Clone and no decode per reader.
	flat bool
	id   string
	ttl  time.Duration
	// tenant is the default tenant.
	tenant string
	limits Limits
	// scratch holds the *scratch[T] of calls, for their work.
	scratch sync.Pool
}

// New returns the store that cfg describes, on backend b; opts override the settings of cfg.
// It fails with an error wrapping [ErrInvalidConfig] (or [ErrInvalidID], [ErrInvalidTenant],
// [ErrInvalidTTL]) when the configuration is invalid, and with [ErrInvalidConfig] when a store
// of the same ID is open on b with other limits (see [Limits]).
func New[K, T any](b Backend, cfg Config[K, T], opts ...StoreOption) (*Store[K, T], error) {
	set := settings{ttl: cfg.TTL, tenant: cfg.Tenant, limits: cfg.Limits}
	if set.tenant == "" {
		set.tenant = DefaultTenant
	}
	for _, o := range opts {
		if err := o.apply(&set); err != nil {
			return nil, err
		}
	}
	if cfg.Key.Format == nil && cfg.Key.Parse == nil {
		if kc, ok := any(StringKeys()).(KeyCodec[K]); ok {
			cfg.Key = kc
		}
	}
	switch {
	case b == nil:
		return nil, fmt.Errorf("%w: nil backend", ErrInvalidConfig)
	case cfg.Codec == nil:
		return nil, fmt.Errorf("%w: store %q has no Codec", ErrInvalidConfig, cfg.ID)
	case cfg.Key.Format == nil || cfg.Key.Parse == nil:
		return nil, fmt.Errorf("%w: store %q has no key codec for keys of type %T", ErrInvalidConfig, cfg.ID, *new(K))
	}
	if err := checkID(cfg.ID); err != nil {
		return nil, err
	}
	if err := checkTenant(set.tenant); err != nil {
		return nil, err
	}
	ttl, err := roundTTL(set.ttl)
	if err != nil {
		return nil, err
	}
	l := set.limits
	if l.MaxEntries < 0 || l.MaxPayloadBytes < 0 || l.EventRetention < 0 || l.MaxEvents < 0 {
		return nil, fmt.Errorf("%w: negative limit in %+v", ErrInvalidConfig, l)
	}
	l = l.WithDefaults()
	if l.EventRetention, err = roundTTL(l.EventRetention); err != nil {
		return nil, fmt.Errorf("%w: event retention: %w", ErrInvalidConfig, err)
	}
	bs, err := b.Open(cfg.ID, l)
	if err != nil {
		return nil, err
	}
	s := &Store[K, T]{
		b:      bs,
		codec:  cfg.Codec,
		key:    cfg.Key,
		keyOf:  cfg.KeyOf,
		id:     cfg.ID,
		ttl:    ttl,
		tenant: set.tenant,
		limits: l,
	}
	if s.flat = isFlat(reflect.TypeFor[T]()); s.flat {
		s.clone = func(dst, src *T) { *dst = *src }
	} else if c, ok := cfg.Codec.(Cloner[T]); ok {
		s.clone = c.Clone
		if bc, ok := cfg.Codec.(BatchCloner[T]); ok {
			s.cloneFunc = bc.CloneFunc
		}
	}
	return s, nil
}

// timeType is time.Time, a value type whose *Location is shared and never modified.
var timeType = reflect.TypeFor[time.Time]()

// isFlat reports whether a copy of a value of type t by assignment shares nothing that either
// copy could modify in place: t holds no slice, map, pointer, interface, channel or func, at any
// depth (strings are immutable, and a time.Time's location is never modified). The typed layer
// then copies decoded values by assignment, whatever the codec: one decode per event or entry
// version, and no Clone call per reader.
func isFlat(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128, reflect.String:
		return true
	case reflect.Array:
		return t.Len() == 0 || isFlat(t.Elem())
	case reflect.Struct:
		if t == timeType {
			return true
		}
		for i := range t.NumField() {
			if !isFlat(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}

// ID returns the store's ID.
func (s *Store[K, T]) ID() string { return s.id }

// DefaultTTL returns the TTL of the store's upserts and touches without [WithTTL].
func (s *Store[K, T]) DefaultTTL() time.Duration { return s.ttl }

// DefaultTenant returns the tenant of the store's calls without [WithTenant].
func (s *Store[K, T]) DefaultTenant() string { return s.tenant }

// Limits returns the store's limits, defaults filled in.
func (s *Store[K, T]) Limits() Limits { return s.limits }

// KeyString returns the string form of key, the key the backend stores.
func (s *Store[K, T]) KeyString(key K) string { return s.key.Format(key) }

// tenantOf returns the tenant of a call.
func (s *Store[K, T]) tenantOf(o *callOptions) (string, error) {
	if !o.tenantSet {
		return s.tenant, nil
	}
	return o.tenant, checkTenant(o.tenant)
}

// Put creates or replaces the entry of v at its key, the key Config.KeyOf returns for it (the
// value's EphemeralKey method, in a generated store); see [Store.Upsert]. A store without KeyOf
// fails with [ErrInvalidConfig].
func (s *Store[K, T]) Put(ctx context.Context, v T, opts ...UpsertOption) (Entry[K, T], error) {
	if s.keyOf == nil {
		return Entry[K, T]{}, fmt.Errorf("%w: store %q has no KeyOf function to take the key of a value from; use Upsert", ErrInvalidConfig, s.id)
	}
	return s.Upsert(ctx, s.keyOf(v), v, opts...)
}

// Upsert creates or replaces the entry at key with v and resets its TTL. CreatedAt is kept when
// the key was live. The key is taken as given, even where the store's KeyOf would take another
// one from v: use [Store.Put] to key a value by its own fields. It fails with [ErrCapacity]
// when key is new and the tenant is full, [ErrPayloadTooLarge], [ErrEncode] when the codec
// fails, a [ConflictError] when a condition does not hold, and the validation errors.
func (s *Store[K, T]) Upsert(ctx context.Context, key K, v T, opts ...UpsertOption) (Entry[K, T], error) {
	o := collect(opts, UpsertOption.applyUpsert)
	tenant, err := s.tenantOf(&o)
	if err != nil {
		return Entry[K, T]{}, err
	}
	k := s.key.Format(key)
	if err := checkKey(k); err != nil {
		return Entry[K, T]{}, err
	}
	ttl, err := s.ttlOf(&o)
	if err != nil {
		return Entry[K, T]{}, err
	}
	if err := o.condErr(); err != nil {
		return Entry[K, T]{}, err
	}
	buf, err := s.encode(v)
	if err != nil {
		return Entry[K, T]{}, fmt.Errorf("%w: key %s: %w", ErrEncode, backend.Quote(k), err)
	}
	if len(buf) > s.limits.MaxPayloadBytes {
		return Entry[K, T]{}, fmt.Errorf("%w: key %s: %d bytes, limit %d (Limits.MaxPayloadBytes: raise it, or write less)",
			ErrPayloadTooLarge, backend.Quote(k), len(buf), s.limits.MaxPayloadBytes)
	}
	raw, err := s.b.Upsert(ctx, tenant, backend.UpsertRequest{Key: k, Value: buf, TTL: ttl, Cond: o.cond})
	if err != nil {
		return Entry[K, T]{}, err
	}
	return entry(key, v, &raw), nil
}

// scratch is a store's working space for one call, kept in Store.scratch between calls: a
// value, which escapes to the heap when it is passed to the codec, and an encode buffer.
type scratch[T any] struct {
	v   T
	buf []byte
}

// maxScratchBuf is the largest encode buffer kept for the next call.
const maxScratchBuf = 64 << 10

func (s *Store[K, T]) getScratch() *scratch[T] {
	if sc, _ := s.scratch.Get().(*scratch[T]); sc != nil {
		return sc
	}
	return new(scratch[T])
}

func (s *Store[K, T]) putScratch(sc *scratch[T]) {
	var zero T
	sc.v = zero
	if cap(sc.buf) > maxScratchBuf {
		sc.buf = nil
	}
	s.scratch.Put(sc)
}

// encode returns the encoding of v in a slice of its own, which the backend may keep (see
// backend.UpsertRequest). The codec works on a pooled value and buffer, so that the copy of
// the result is the one allocation.
func (s *Store[K, T]) encode(v T) ([]byte, error) {
	sc := s.getScratch()
	defer s.putScratch(sc)
	sc.v = v
	buf, err := s.codec.Encode(sc.buf[:0], &sc.v)
	if err != nil {
		return nil, err
	}
	sc.buf = buf[:0]
	return bytes.Clone(buf), nil
}

var errConditions = fmt.Errorf("%w: more than one condition (IfNew, IfExists, IfVersion, IfCursor) in one call; a call takes one", ErrInvalidConfig)

func (s *Store[K, T]) ttlOf(o *callOptions) (time.Duration, error) {
	if !o.ttlSet {
		return s.ttl, nil
	}
	return roundTTL(o.ttl)
}

// Touch extends the TTL of the live entry at key (to now + TTL) without changing its value.
// A missing or expired key is not an error: the result's OK is false. Unless [Quiet] is given,
// the touch makes a new version and a touch event.
func (s *Store[K, T]) Touch(ctx context.Context, key K, opts ...TouchOption) (TouchResult, error) {
	o := collect(opts, TouchOption.applyTouch)
	tenant, err := s.tenantOf(&o)
	if err != nil {
		return TouchResult{}, err
	}
	k := s.key.Format(key)
	if err := checkKey(k); err != nil {
		return TouchResult{}, err
	}
	ttl, err := s.ttlOf(&o)
	if err != nil {
		return TouchResult{}, err
	}
	if err := o.condErr(); err != nil {
		return TouchResult{}, err
	}
	res, err := s.b.Touch(ctx, tenant, backend.TouchRequest{Key: k, TTL: ttl, Quiet: o.quiet, Cond: o.cond})
	if err != nil {
		return TouchResult{}, err
	}
	return touchResult(res), nil
}

// touchResult is the TouchResult of r: the zero one when the key was not live.
func touchResult(r backend.TouchResult) TouchResult {
	if !r.OK {
		return TouchResult{}
	}
	return TouchResult{OK: true, Version: r.Version, ExpiresAt: msTime(r.ExpiresAt)}
}

// TouchMany touches each of keys, as Touch would with the same options, and returns their
// results in the order of keys: the heartbeat of many entries of one tenant, such as the
// members a server keeps alive, at the cost of about one call. A key may come more than once;
// no keys is no call. It takes no condition ([IfVersion], [IfCursor]): a call with one fails
// with [ErrInvalidConfig].
//
// The touches are applied in the order of keys, and sent together: memstore applies them all at
// one instant, atomically; the Redis backend in script calls of up to 64 touches, one after the
// other, each atomic and with its own time (up to 64 keys are one atomic write; other writes of
// the tenant may come between two calls). A key that does not check fails the call before
// anything is sent; when the call fails later, the results are nil and the touches sent before
// the failure may have been applied, as a Touch that fails may have been.
func (s *Store[K, T]) TouchMany(ctx context.Context, keys []K, opts ...TouchOption) ([]TouchResult, error) {
	o := collect(opts, TouchOption.applyTouch)
	tenant, err := s.tenantOf(&o)
	if err != nil {
		return nil, err
	}
	ttl, err := s.ttlOf(&o)
	if err != nil {
		return nil, err
	}
	if err := o.condErr(); err != nil {
		return nil, err
	}
	if o.condCount > 0 {
		return nil, errManyCondition
	}
	if len(keys) == 0 {
		return nil, nil
	}
	ks := make([]string, len(keys))
	for i, key := range keys {
		ks[i] = s.key.Format(key)
		if err := checkKey(ks[i]); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
	}
	rs, err := s.b.TouchMany(ctx, tenant, backend.TouchManyRequest{Keys: ks, TTL: ttl, Quiet: o.quiet})
	if err != nil {
		return nil, err
	}
	res := make([]TouchResult, len(rs))
	for i, r := range rs {
		res[i] = touchResult(r)
	}
	return res, nil
}

var errManyCondition = fmt.Errorf("%w: TouchMany takes no condition (IfVersion, IfCursor): touch such keys one by one", ErrInvalidConfig)

// Remove deletes the entry at key and reports whether it was live. A live key's removal emits a
// delete event carrying the reason of [WithReason].
func (s *Store[K, T]) Remove(ctx context.Context, key K, opts ...RemoveOption) (bool, error) {
	o := collect(opts, RemoveOption.applyRemove)
	tenant, err := s.tenantOf(&o)
	if err != nil {
		return false, err
	}
	k := s.key.Format(key)
	if err := checkKey(k); err != nil {
		return false, err
	}
	if len(o.reason) > MaxReasonBytes {
		return false, fmt.Errorf("%w: reason of %d bytes, limit %d (MaxReasonBytes: shorten the reason)", ErrPayloadTooLarge, len(o.reason), MaxReasonBytes)
	}
	if err := o.condErr(); err != nil {
		return false, err
	}
	return s.b.Remove(ctx, tenant, backend.RemoveRequest{Key: k, Reason: o.reason, Cond: o.cond})
}

// Get returns the live entry at key; ok is false when there is none. An entry past its
// ExpiresAt is never returned. A stored value the codec cannot decode is an error wrapping
// [ErrDecode].
func (s *Store[K, T]) Get(ctx context.Context, key K, opts ...GetOption) (e Entry[K, T], ok bool, err error) {
	o := collect(opts, GetOption.applyGet)
	tenant, err := s.tenantOf(&o)
	if err != nil {
		return e, false, err
	}
	k := s.key.Format(key)
	if err := checkKey(k); err != nil {
		return e, false, err
	}
	raw, ok, err := s.b.Get(ctx, tenant, k)
	if err != nil || !ok {
		return e, false, err
	}
	sc := s.getScratch()
	defer s.putScratch(sc)
	if err := s.value(&raw, &sc.v); err != nil {
		return e, false, err
	}
	return entry(key, sc.v, &raw), true, nil
}

// Snapshot returns every live entry of the tenant (of the keys with a prefix, with
// [WithPrefix]), sorted by the string form of their keys in byte order, and the cursor to start
// a reader after.
//
// An entry that cannot be read, because its key does not parse as K or its value does not
// decode (written by another program or another version of this one), is left out: Snapshot
// then returns the entries it could read and the cursor together with a *[SnapshotError],
// which names the keys left out and matches [ErrDecode] or [ErrInvalidKey]. One bad entry does
// not hide the others; a caller that cannot use a partial snapshot treats any error as a
// failure.
func (s *Store[K, T]) Snapshot(ctx context.Context, opts ...SnapshotOption) (Snapshot[K, T], error) {
	return s.AppendSnapshot(ctx, nil, opts...)
}

// AppendSnapshot is [Store.Snapshot], with the entries appended to dst: the snapshot's Entries
// are the extended slice. A caller that takes snapshots often can reuse one slice, as in
// buf = snap.Entries[:0], and spare the allocation of a new one each time, which is most of the
// cost of a snapshot on the memory backend (10,000 entries are a megabyte or more, and memory
// the process has just given back costs page faults to get again; see docs/PERFORMANCE.md).
// The entries of dst beyond its length are overwritten; their values are replaced, not
// reused: a value handed out earlier does not change.
func (s *Store[K, T]) AppendSnapshot(ctx context.Context, dst []Entry[K, T], opts ...SnapshotOption) (Snapshot[K, T], error) {
	o := collect(opts, SnapshotOption.applySnapshot)
	tenant, err := s.tenantOf(&o)
	if err != nil {
		return Snapshot[K, T]{Entries: dst}, err
	}
	raw, err := s.rawSnapshot(ctx, tenant, o.prefix)
	if err != nil {
		return Snapshot[K, T]{Entries: dst}, err
	}
	defer putRaw(raw.Entries)
	n := len(dst)
	if dst == nil {
		dst = make([]Entry[K, T], 0, len(raw.Entries)) // not nil when empty, as before
	}
	dst = slices.Grow(dst, len(raw.Entries))[:n+len(raw.Entries)]
	clone := s.clone // the codec's CloneFunc for this run of copies, if it has one
	if s.cloneFunc != nil {
		clone = s.cloneFunc()
	}
	var skipped *SnapshotError
	for i := range raw.Entries {
		if err := s.readEntry(&raw.Entries[i], &dst[n], clone); err != nil {
			dst[n] = Entry[K, T]{}
			if skipped == nil {
				skipped = &SnapshotError{}
			}
			skipped.Keys = append(skipped.Keys, raw.Entries[i].Key)
			skipped.Errs = append(skipped.Errs, err)
			continue
		}
		n++
	}
	snap := Snapshot[K, T]{Entries: dst[:n], Cursor: raw.Cursor.String()}
	if skipped != nil {
		return snap, skipped
	}
	return snap, nil
}

// rawPool holds slices of raw entries for the snapshots of backends that append them to a
// slice of ours (backend.SnapshotAppender): a snapshot reads its raw entries into the typed
// ones and is done with them, so the next can reuse the slice. A pooled slice is not cleared:
// the keys and values of its last snapshot stay reachable until a snapshot overwrites them or
// the pool drops the slice (after two garbage collections at most).
var rawPool sync.Pool // of *[]backend.Entry

// rawSnapshot takes a snapshot of the backend, into a slice of rawPool when the backend can
// append to one. Give the entries back with putRaw.
func (s *Store[K, T]) rawSnapshot(ctx context.Context, tenant, prefix string) (backend.Snapshot, error) {
	a, ok := s.b.(backend.SnapshotAppender)
	if !ok {
		return s.b.Snapshot(ctx, tenant, prefix)
	}
	var dst []backend.Entry
	if p, _ := rawPool.Get().(*[]backend.Entry); p != nil {
		dst = (*p)[:0]
	}
	return a.AppendSnapshot(ctx, tenant, prefix, dst)
}

// putRaw puts entries, of a snapshot that is done with them, into rawPool.
func putRaw(entries []backend.Entry) {
	if cap(entries) > 0 {
		rawPool.Put(&entries)
	}
}

// SnapshotError is the error of a [Store.Snapshot] that left out entries it could not read. The
// snapshot it comes with holds every other entry and a valid cursor.
type SnapshotError struct {
	Keys []string // the string forms of the keys left out, in byte order
	Errs []error  // why, one error per key, each wrapping ErrDecode or ErrInvalidKey
}

// maxKeysShown is the most keys a SnapshotError names in its message.
const maxKeysShown = 5

// Error says how many entries were left out, names the first few keys, and gives the first
// error.
func (e *SnapshotError) Error() string {
	var b strings.Builder
	if len(e.Keys) == 1 {
		b.WriteString("ephemeral: snapshot left out 1 entry it cannot read (")
	} else {
		fmt.Fprintf(&b, "ephemeral: snapshot left out %d entries it cannot read (", len(e.Keys))
	}
	for i, k := range e.Keys[:min(len(e.Keys), maxKeysShown)] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(backend.Quote(k))
	}
	if n := len(e.Keys) - maxKeysShown; n > 0 {
		fmt.Fprintf(&b, " and %d more", n)
	}
	fmt.Fprintf(&b, "): %v", e.Errs[0])
	return b.String()
}

// Unwrap returns the error of every entry left out, so that errors.Is matches ErrDecode and
// ErrInvalidKey.
func (e *SnapshotError) Unwrap() []error { return e.Errs }

// Reader starts a stream of the tenant's events. Without [After] it starts at the moment Reader
// returns: every later event is delivered, however late the first Recv comes. With [After] it
// starts after the given cursor; an overflow event comes first when that cursor is no longer
// available. Close the reader when done.
func (s *Store[K, T]) Reader(ctx context.Context, opts ...ReaderOption) (*Reader[K, T], error) {
	o := collect(opts, ReaderOption.applyReader)
	tenant, err := s.tenantOf(&o)
	if err != nil {
		return nil, err
	}
	req := backend.SubscribeRequest{Prefix: o.prefix}
	if o.afterSet {
		c, err := backend.ParseCursor(o.after)
		if err != nil {
			return nil, err
		}
		req.After = &c
	}
	sub, err := s.b.Subscribe(ctx, tenant, req)
	if err != nil {
		return nil, err
	}
	r := &Reader[K, T]{s: s, sub: sub}
	r.pos.set(sub.Start())
	return r, nil
}

// decode decodes the value of raw into *v.
func (s *Store[K, T]) decode(raw *backend.Entry, v *T) error {
	if err := s.codec.Decode(raw.Value, v); err != nil {
		return fmt.Errorf("%w: key %s version %d: %w", ErrDecode, backend.Quote(raw.Key), raw.Version, err)
	}
	return nil
}

// value sets *v to the value of raw: a copy of the value in raw's memo (see memoized), or else
// raw's value decoded.
func (s *Store[K, T]) value(raw *backend.Entry, v *T) error {
	// A decode may leave what the JSON does not have as it was, and a Clone may reuse what *v
	// holds: both start from a zero value.
	var zero T
	*v = zero
	m, err := s.memoized(raw)
	switch {
	case m != nil:
		s.clone(v, &m.Value) // assignment when T is flat
		return nil
	case err != nil && !errors.Is(err, ErrInvalidKey):
		return err
	}
	// No memo, or a key that does not parse, which a Get does not need.
	return s.decode(raw, v)
}

// memoEntry is the decoded form of a stored entry's value, kept in its memo: the Entry, and the
// times in milliseconds that a touch changes, as its times were made of.
type memoEntry[K, T any] struct {
	Entry[K, T]
	updated, expires int64
}

// memoized returns the decoded form of raw's value: made by the first read of the value and
// kept in raw's memo (see backend.Memo), so that the key is parsed, the value decoded and the
// times converted once per value, and every read gets a copy (the value's by the codec's
// Clone). It returns nil, and no error, when the backend keeps no memo or the codec has no
// Clone (each read then decodes a value of its own), and the error when raw's key does not
// parse or its value does not decode. A touch keeps the memo but changes the entry's times and
// (unless quiet) its version: the caller checks them (see readEntry).
func (s *Store[K, T]) memoized(raw *backend.Entry) (*memoEntry[K, T], error) {
	if s.clone == nil || raw.Memo == nil {
		return nil, nil
	}
	if m, ok := raw.Memo.Load(s).(*memoEntry[K, T]); ok {
		return m, nil
	}
	k, err := s.parseKey(raw.Key)
	if err != nil {
		return nil, err
	}
	m := &memoEntry[K, T]{updated: raw.UpdatedAt, expires: raw.ExpiresAt}
	if err := s.decode(raw, &m.Value); err != nil {
		return nil, err
	}
	m.Key = k
	setMeta(&m.Entry, raw)
	if w, ok := raw.Memo.Store(s, m).(*memoEntry[K, T]); ok {
		return w, nil
	}
	return m, nil // the memo holds another store's form
}

// copied returns a deep copy of *v: made by the codec's Clone, or else by encoding *v and
// decoding the result.
func (s *Store[K, T]) copied(v *T) T {
	if s.flat {
		return *v
	}
	sc := s.getScratch()
	defer s.putScratch(sc)
	if s.clone != nil {
		s.clone(&sc.v, v)
		return sc.v
	}
	buf, err := s.codec.Encode(sc.buf[:0], v)
	if err == nil {
		sc.buf = buf[:0]
		err = s.codec.Decode(buf, &sc.v)
	}
	if err != nil { // not for a value the codec decoded; keep what there is
		return *v
	}
	return sc.v
}

// readEntry parses the key and reads the value of raw into *dst, whatever *dst held: nothing of
// it stays, and nothing of a value handed out before (as in a reused snapshot slice) is reused
// (cloneEntry and the decode start from a zero value). A value from raw's memo is copied by
// clone: s.clone, or a snapshot's function of the codec's CloneFunc. *dst is where the value
// ends up (not a copy of it): a value read into a local variable would escape to the heap, one
// read into an element of a result slice costs no allocation of its own.
func (s *Store[K, T]) readEntry(raw *backend.Entry, dst *Entry[K, T], clone func(dst, src *T)) error {
	m, err := s.memoized(raw)
	if err != nil {
		return err
	}
	if m == nil {
		k, err := s.parseKey(raw.Key)
		if err != nil {
			return err
		}
		var zero T
		dst.Value = zero // a decode may leave what the JSON does not have as it was
		if err := s.decode(raw, &dst.Value); err != nil {
			return err
		}
		dst.Key = k
		setMeta(dst, raw)
		return nil
	}
	s.cloneEntry(dst, &m.Entry, clone)
	if raw.Version != m.Version || raw.UpdatedAt != m.updated || raw.ExpiresAt != m.expires {
		setMeta(dst, raw) // touched since the memo was made (see backend.Entry.Memo)
	}
	return nil
}

// cloneEntry sets *dst to *src with a value of the caller's own: src's copied by assignment
// when T is flat, or else a deep copy made by clone, a Clone of the codec's (s.clone, or a
// function of its CloneFunc).
func (s *Store[K, T]) cloneEntry(dst, src *Entry[K, T], clone func(dst, src *T)) {
	*dst = *src
	if !s.flat {
		var zero T
		dst.Value = zero
		clone(&dst.Value, &src.Value)
	}
}

// decodeEntry is readEntry into a new Entry.
func (s *Store[K, T]) decodeEntry(raw *backend.Entry) (Entry[K, T], error) {
	var e Entry[K, T]
	err := s.readEntry(raw, &e, s.clone)
	return e, err
}

// parseKey parses a stored key. On failure it returns the zero K, whatever Parse returned, and
// an error wrapping ErrInvalidKey.
func (s *Store[K, T]) parseKey(key string) (K, error) {
	k, err := s.key.Parse(key)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, ErrInvalidKey) {
		err = fmt.Errorf("%w: %s: %w", ErrInvalidKey, backend.Quote(key), err)
	}
	var zero K
	return zero, err
}

func entry[K, T any](key K, v T, raw *backend.Entry) Entry[K, T] {
	e := Entry[K, T]{Key: key, Value: v}
	setMeta(&e, raw)
	return e
}

// setMeta sets the version, epoch and times of e to those of raw.
func setMeta[K, T any](e *Entry[K, T], raw *backend.Entry) {
	e.Version = raw.Version
	e.Epoch = raw.Epoch
	e.CreatedAt = msTime(raw.CreatedAt)
	e.UpdatedAt = msTime(raw.UpdatedAt)
	e.ExpiresAt = msTime(raw.ExpiresAt)
}

// collect applies opts to a fresh callOptions. The options are interface values, so the
// struct they write to escapes to the heap; allocating it only when there are options keeps
// calls without options free of that allocation.
func collect[O any](opts []O, apply func(O, *callOptions)) callOptions {
	if len(opts) == 0 {
		return callOptions{}
	}
	o := new(callOptions)
	for _, opt := range opts {
		apply(opt, o)
	}
	return *o
}

func checkKey(key string) error {
	if key == "" || len(key) > MaxKeyBytes {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrInvalidKey, len(key), MaxKeyBytes)
	}
	return nil
}

func checkTenant(t string) error {
	if t == "" {
		// Most likely a tenant missing from request data: say that "" is not the default.
		return fmt.Errorf("%w: empty (want 1 to %d bytes); \"\" is not the default tenant: leave the option out for that", ErrInvalidTenant, MaxTenantBytes)
	}
	if len(t) > MaxTenantBytes {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrInvalidTenant, len(t), MaxTenantBytes)
	}
	return nil
}

func checkID(id string) error {
	if id == "" || len(id) > MaxIDBytes {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrInvalidID, len(id), MaxIDBytes)
	}
	if !utf8.ValidString(id) {
		// An ID names the store in metrics (a Prometheus label must be UTF-8) and logs.
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidID, id)
	}
	return nil
}

// roundTTL checks that ttl is positive and rounds it up to a whole millisecond.
func roundTTL(ttl time.Duration) (time.Duration, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("%w: %v, want > 0", ErrInvalidTTL, ttl)
	}
	if r := ttl % time.Millisecond; r != 0 {
		if ttl > (1<<63-1)-time.Millisecond {
			return 0, fmt.Errorf("%w: %v is too long", ErrInvalidTTL, ttl)
		}
		ttl += time.Millisecond - r
	}
	return ttl, nil
}
