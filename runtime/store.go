package runtime

import (
	"context"
	"fmt"
	"time"
)

// Codec encodes and decodes values of type T as JSON. ephemeralgen generates one per annotated
// type; it must not use reflection.
type Codec[T any] interface {
	// Encode appends the JSON encoding of *v to dst and returns the extended buffer.
	Encode(dst []byte, v *T) ([]byte, error)
	// Decode parses the JSON in src into *v.
	Decode(src []byte, v *T) error
}

// DefaultTenant is the tenant of a store whose Config leaves Tenant empty.
const DefaultTenant = "default"

// Config configures a [Store].
type Config struct {
	ID     string        // the store ID, 1 to MaxIDBytes bytes; required
	TTL    time.Duration // the default time-to-live; required, > 0
	Tenant string        // the default tenant; "" means DefaultTenant
	Limits Limits        // zero fields take the defaults
}

// StoreOption changes a [Config] before a store is built from it; generated constructors take
// them so that the defaults from a directive can be overridden.
type StoreOption func(*Config)

// WithDefaultTTL sets the store's default TTL.
func WithDefaultTTL(ttl time.Duration) StoreOption { return func(c *Config) { c.TTL = ttl } }

// WithDefaultTenant sets the store's default tenant.
func WithDefaultTenant(t string) StoreOption { return func(c *Config) { c.Tenant = t } }

// WithLimits sets the store's limits; zero fields take the defaults.
func WithLimits(l Limits) StoreOption { return func(c *Config) { c.Limits = l } }

// Store is a typed view of one store ID on a [Backend]. It is safe for concurrent use and cheap:
// any number of stores may share one backend.
type Store[T any] struct {
	backend Backend
	codec   Codec[T]
	cfg     Config
	scope   Scope // default tenant
}

// New returns a store of values of type T on backend b. It fails with an error wrapping
// [ErrInvalidConfig] (or [ErrInvalidID], [ErrInvalidTenant], [ErrInvalidTTL]) when cfg is
// invalid.
func New[T any](b Backend, codec Codec[T], cfg Config, opts ...StoreOption) (*Store[T], error) {
	for _, o := range opts {
		o(&cfg)
	}
	if b == nil || codec == nil {
		return nil, fmt.Errorf("%w: nil backend or codec", ErrInvalidConfig)
	}
	if cfg.Tenant == "" {
		cfg.Tenant = DefaultTenant
	}
	if err := checkID(cfg.ID); err != nil {
		return nil, err
	}
	if err := checkTenant(cfg.Tenant); err != nil {
		return nil, err
	}
	ttl, err := roundTTL(cfg.TTL)
	if err != nil {
		return nil, err
	}
	cfg.TTL = ttl
	l := cfg.Limits
	if l.MaxEntries < 0 || l.MaxPayloadBytes < 0 || l.EventRetention < 0 || l.MaxEvents < 0 {
		return nil, fmt.Errorf("%w: negative limit in %+v", ErrInvalidConfig, l)
	}
	cfg.Limits = l.WithDefaults()
	return &Store[T]{
		backend: b,
		codec:   codec,
		cfg:     cfg,
		scope:   Scope{ID: cfg.ID, Tenant: cfg.Tenant, Limits: cfg.Limits},
	}, nil
}

// Config returns the store's configuration, defaults filled in.
func (s *Store[T]) Config() Config { return s.cfg }

// Backend returns the store's backend.
func (s *Store[T]) Backend() Backend { return s.backend }

// Codec returns the store's codec.
func (s *Store[T]) Codec() Codec[T] { return s.codec }

func (s *Store[T]) scopeFor(tenant string) (Scope, error) {
	if tenant == "" {
		return s.scope, nil
	}
	if err := checkTenant(tenant); err != nil {
		return Scope{}, err
	}
	sc := s.scope
	sc.Tenant = tenant
	return sc, nil
}

// Upsert creates or replaces the entry at key with v and resets its TTL. CreatedAt is kept when
// the key was live. It fails with [ErrCapacity] when key is new and the tenant is full,
// [ErrPayloadTooLarge], [ErrConflict] when a condition does not hold, and the validation
// errors.
func (s *Store[T]) Upsert(ctx context.Context, key string, v T, opts ...UpsertOption) (Entry[T], error) {
	o := collect(opts, UpsertOption.applyUpsert)
	sc, req, err := s.upsertRequest(key, &v, &o)
	if err != nil {
		return Entry[T]{}, err
	}
	raw, err := s.backend.Upsert(ctx, sc, req)
	if err != nil {
		return Entry[T]{}, err
	}
	return Entry[T]{Key: raw.Key, Value: v, Version: raw.Version, CreatedAt: raw.CreatedAt, UpdatedAt: raw.UpdatedAt, ExpiresAt: raw.ExpiresAt}, nil
}

func (s *Store[T]) upsertRequest(key string, v *T, o *callOptions) (Scope, UpsertRequest, error) {
	sc, err := s.scopeFor(o.tenant)
	if err != nil {
		return sc, UpsertRequest{}, err
	}
	if err := checkKey(key); err != nil {
		return sc, UpsertRequest{}, err
	}
	ttl, err := s.ttl(o)
	if err != nil {
		return sc, UpsertRequest{}, err
	}
	if o.condCount > 1 {
		return sc, UpsertRequest{}, fmt.Errorf("%w: more than one condition", ErrInvalidConfig)
	}
	buf, err := s.codec.Encode(nil, v)
	if err != nil {
		return sc, UpsertRequest{}, fmt.Errorf("ephemeral: encode %q: %w", key, err)
	}
	if len(buf) > sc.Limits.MaxPayloadBytes {
		return sc, UpsertRequest{}, fmt.Errorf("%w: %d bytes, limit %d", ErrPayloadTooLarge, len(buf), sc.Limits.MaxPayloadBytes)
	}
	return sc, UpsertRequest{Key: key, Value: buf, TTL: ttl, Cond: o.cond}, nil
}

func (s *Store[T]) ttl(o *callOptions) (time.Duration, error) {
	if !o.ttlSet {
		return s.cfg.TTL, nil
	}
	return roundTTL(o.ttl)
}

// Touch extends the TTL of the live entry at key (to now + TTL) without changing its value.
// A missing or expired key is not an error: the result's OK is false. Unless [Quiet] is given,
// the touch makes a new version and a touch event.
func (s *Store[T]) Touch(ctx context.Context, key string, opts ...TouchOption) (TouchResult, error) {
	o := collect(opts, TouchOption.applyTouch)
	sc, err := s.scopeFor(o.tenant)
	if err != nil {
		return TouchResult{}, err
	}
	if err := checkKey(key); err != nil {
		return TouchResult{}, err
	}
	ttl, err := s.ttl(&o)
	if err != nil {
		return TouchResult{}, err
	}
	if o.condCount > 1 {
		return TouchResult{}, fmt.Errorf("%w: more than one condition", ErrInvalidConfig)
	}
	return s.backend.Touch(ctx, sc, TouchRequest{Key: key, TTL: ttl, Quiet: o.quiet, Cond: o.cond})
}

// Remove deletes the entry at key and reports whether it was live. A live key's removal emits a
// delete event carrying the reason of [WithReason].
func (s *Store[T]) Remove(ctx context.Context, key string, opts ...RemoveOption) (bool, error) {
	o := collect(opts, RemoveOption.applyRemove)
	sc, err := s.scopeFor(o.tenant)
	if err != nil {
		return false, err
	}
	if err := checkKey(key); err != nil {
		return false, err
	}
	if len(o.reason) > MaxReasonBytes {
		return false, fmt.Errorf("%w: reason of %d bytes, limit %d", ErrPayloadTooLarge, len(o.reason), MaxReasonBytes)
	}
	if o.condCount > 1 {
		return false, fmt.Errorf("%w: more than one condition", ErrInvalidConfig)
	}
	return s.backend.Remove(ctx, sc, RemoveRequest{Key: key, Reason: o.reason, Cond: o.cond})
}

// Get returns the live entry at key; ok is false when there is none. An entry past its
// ExpiresAt is never returned. A stored value the codec cannot decode is an error wrapping
// [ErrDecode].
func (s *Store[T]) Get(ctx context.Context, key string, opts ...GetOption) (e Entry[T], ok bool, err error) {
	o := collect(opts, GetOption.applyGet)
	sc, err := s.scopeFor(o.tenant)
	if err != nil {
		return e, false, err
	}
	if err := checkKey(key); err != nil {
		return e, false, err
	}
	raw, ok, err := s.backend.Get(ctx, sc, key)
	if err != nil || !ok {
		return e, false, err
	}
	e, err = s.decodeEntry(&raw)
	return e, err == nil, err
}

// Snapshot returns every live entry of the tenant (of the keys with a prefix, with
// [WithPrefix]), sorted by key in byte order, and the cursor to start a reader after.
func (s *Store[T]) Snapshot(ctx context.Context, opts ...SnapshotOption) (Snapshot[T], error) {
	o := collect(opts, SnapshotOption.applySnapshot)
	sc, err := s.scopeFor(o.tenant)
	if err != nil {
		return Snapshot[T]{}, err
	}
	raw, err := s.backend.Snapshot(ctx, sc, o.prefix)
	if err != nil {
		return Snapshot[T]{}, err
	}
	snap := Snapshot[T]{Entries: make([]Entry[T], len(raw.Entries)), Cursor: raw.Cursor.String()}
	for i := range raw.Entries {
		if snap.Entries[i], err = s.decodeEntry(&raw.Entries[i]); err != nil {
			return Snapshot[T]{}, err
		}
	}
	return snap, nil
}

func (s *Store[T]) decodeEntry(raw *RawEntry) (Entry[T], error) {
	e := Entry[T]{Key: raw.Key, Version: raw.Version, CreatedAt: raw.CreatedAt, UpdatedAt: raw.UpdatedAt, ExpiresAt: raw.ExpiresAt}
	if err := s.codec.Decode(raw.Value, &e.Value); err != nil {
		return Entry[T]{}, fmt.Errorf("%w: key %q version %d: %w", ErrDecode, raw.Key, raw.Version, err)
	}
	return e, nil
}

// Reader starts a stream of the tenant's events. Without [After] it starts at the moment Reader
// returns: every later event is delivered, however late the first Recv comes. With [After] it
// starts after the given cursor; an overflow event comes first when that cursor is no longer
// available. Close the reader when done.
func (s *Store[T]) Reader(ctx context.Context, opts ...ReaderOption) (*Reader[T], error) {
	o := collect(opts, ReaderOption.applyReader)
	sc, err := s.scopeFor(o.tenant)
	if err != nil {
		return nil, err
	}
	var req SubscribeRequest
	req.Prefix = o.prefix
	if o.afterSet {
		c, err := ParseCursor(o.after)
		if err != nil {
			return nil, err
		}
		req.After = &c
	}
	sub, err := s.backend.Subscribe(ctx, sc, req)
	if err != nil {
		return nil, err
	}
	return newReader(s, sub, req.After), nil
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
	if t == "" || len(t) > MaxTenantBytes {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrInvalidTenant, len(t), MaxTenantBytes)
	}
	return nil
}

func checkID(id string) error {
	if id == "" || len(id) > MaxIDBytes {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrInvalidID, len(id), MaxIDBytes)
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
