package backend

import (
	"context"
	"fmt"
	"time"
)

// Backend keeps the state of stores: encoded values, versions, expiries and event streams, per
// (store ID, tenant). runtime/memstore and runtime/redisstore implement it.
type Backend interface {
	// Open returns the store with ID id, whose every tenant is bound by l; l has passed
	// [Limits.Validate]. Limits belong to a store ID: opening an ID that is already open on the
	// backend with other limits fails with an error wrapping [ErrInvalidConfig] (see
	// [SameLimits]). Opening it again with the same limits returns a store that shares its state.
	Open(id string, l Limits) (Store, error)
	// Close releases what the backend holds (goroutines, connections of its own) and ends
	// every subscription of its stores: a waiting Next returns ErrClosed, and so do later
	// calls. Close is idempotent. It does not close what it was given, such as a Redis
	// client.
	Close() error
}

// Store is one store ID on a backend. All methods are safe for concurrent use; tenant is
// always valid (1 to 256 bytes).
type Store interface {
	// Upsert creates or replaces req.Key. The backend may keep req.Value; the caller does not
	// modify it afterwards. Fails with ErrCapacity or a ConflictError.
	Upsert(ctx context.Context, tenant string, req UpsertRequest) (Entry, error)
	// Touch extends the TTL of a live key. A missing or expired key is not an error:
	// TouchResult.OK is false (unless a condition fails: a ConflictError).
	Touch(ctx context.Context, tenant string, req TouchRequest) (TouchResult, error)
	// TouchMany touches each of req.Keys as Touch would, in their order, and returns their
	// results in that order; a key may come more than once. A backend may apply them in parts,
	// one after the other, each atomic. It fails whole (nil results) when a call to the
	// backend fails; touches applied before may stay applied.
	TouchMany(ctx context.Context, tenant string, req TouchManyRequest) ([]TouchResult, error)
	// Remove deletes a live key and reports whether it was live.
	Remove(ctx context.Context, tenant string, req RemoveRequest) (bool, error)
	// Get returns a live entry. An entry at or past its ExpiresAt is never returned.
	Get(ctx context.Context, tenant, key string) (Entry, bool, error)
	// Snapshot returns the live entries whose keys start with prefix, sorted by key in byte
	// order, and the cursor of the same instant.
	Snapshot(ctx context.Context, tenant, prefix string) (Snapshot, error)
	// Subscribe starts a stream of the tenant's events. Its position is fixed when Subscribe
	// returns: with a nil req.After, events after that moment; otherwise events after
	// *req.After, an overflow event first if that cursor is no longer available (see
	// [Overflow]). A cursor of the tenant's current epoch beyond its last version is an error
	// wrapping ErrInvalidCursor.
	Subscribe(ctx context.Context, tenant string, req SubscribeRequest) (Subscription, error)
}

// SnapshotAppender is implemented by a [Store] that can append the entries of a snapshot to a
// slice of the caller's, so that the caller can use one slice for many snapshots instead of a
// new one for each (runtime/memstore has it). The typed layer uses it when it is there.
type SnapshotAppender interface {
	// AppendSnapshot is Store.Snapshot, with the entries appended to dst: the Entries of the
	// result are dst extended.
	AppendSnapshot(ctx context.Context, tenant, prefix string, dst []Entry) (Snapshot, error)
}

// Subscription is a backend's stream of events for one reader.
type Subscription interface {
	// Start returns the position the subscription started after: *SubscribeRequest.After, or
	// the tenant's position when Subscribe returned.
	Start() Cursor
	// Next blocks until the next event, ctx is done (ctx.Err() is returned) or the
	// subscription or its backend is closed (ErrClosed). Not safe for concurrent calls.
	// With a ctx that is done, Next returns an event that is ready in the process (or an
	// overflow) and ctx.Err() rather than wait or read the backend for one: the typed
	// Reader's TryRecv relies on it.
	//
	// The event may be shared with the tenant's other readers (it points into the tenant's
	// [Log]): it is read-only for everybody, the receiver included.
	Next(ctx context.Context) (*Event, error)
	// Close ends the subscription and releases its resources; Next then returns ErrClosed.
	// Close is idempotent and safe to call concurrently with Next.
	Close() error
}

// Limits bound the state of every tenant of one store ID.
type Limits struct {
	MaxEntries      int           // live entries per tenant; default 10,000
	MaxPayloadBytes int           // encoded value size; default 4,096
	EventRetention  time.Duration // how long events are kept; default 5 minutes
	MaxEvents       int           // most events kept per tenant; default 50,000
}

// Default limits, those of the reference library.
const (
	DefaultMaxEntries      = 10_000
	DefaultMaxPayloadBytes = 4_096
	DefaultEventRetention  = 5 * time.Minute
	DefaultMaxEvents       = 50_000
)

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxEntries == 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxPayloadBytes == 0 {
		l.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if l.EventRetention == 0 {
		l.EventRetention = DefaultEventRetention
	}
	if l.MaxEvents == 0 {
		l.MaxEvents = DefaultMaxEvents
	}
	return l
}

// Validate returns an error wrapping [ErrInvalidConfig] unless every field of l is positive and
// the retention is a whole number of milliseconds.
func (l Limits) Validate() error {
	if l.MaxEntries <= 0 || l.MaxPayloadBytes <= 0 || l.EventRetention <= 0 || l.MaxEvents <= 0 ||
		l.EventRetention%time.Millisecond != 0 {
		return fmt.Errorf("%w: limits %+v: want every field positive, the retention in whole milliseconds", ErrInvalidConfig, l)
	}
	return nil
}

// SameLimits is the rule of [Backend.Open]: it returns nil when want equals have, the limits the
// store id is open with, and otherwise an error wrapping [ErrInvalidConfig] that names both.
func SameLimits(id string, have, want Limits) error {
	if have == want {
		return nil
	}
	return fmt.Errorf("%w: store %q is open with limits %+v; a store of the same id asks for %+v", ErrInvalidConfig, id, have, want)
}

// UpsertRequest is the input of [Store.Upsert].
type UpsertRequest struct {
	Key   string
	Value []byte        // the codec's output, stored and returned byte for byte
	TTL   time.Duration // > 0, a whole number of milliseconds
	Cond  Condition     // any kind
}

// TouchRequest is the input of [Store.Touch].
type TouchRequest struct {
	Key   string
	TTL   time.Duration // > 0, a whole number of milliseconds
	Quiet bool          // extend the expiry only: no new version, no UpdatedAt change, no event
	Cond  Condition     // CondNone or CondIfVersion (with or without an epoch)
}

// TouchManyRequest is the input of [Store.TouchMany]: one TTL and kind for all its keys, and
// no condition.
type TouchManyRequest struct {
	Keys  []string      // each valid; none is a call that touches nothing
	TTL   time.Duration // > 0, a whole number of milliseconds
	Quiet bool          // as [TouchRequest.Quiet]
}

// RemoveRequest is the input of [Store.Remove].
type RemoveRequest struct {
	Key    string
	Reason string    // carried by the delete event
	Cond   Condition // CondNone or CondIfVersion (with or without an epoch)
}

// SubscribeRequest is the input of [Store.Subscribe].
type SubscribeRequest struct {
	After  *Cursor // nil: start now
	Prefix string  // deliver only events of keys with this prefix (overflow events always)
}

// TouchResult is the outcome of [Store.Touch].
type TouchResult struct {
	OK        bool   // false when the key was missing or expired; nothing was written then
	Version   uint64 // the entry's version after the touch (unchanged by a quiet touch)
	ExpiresAt int64  // the entry's new expiry
}

// Entry is a live entry with its value encoded.
type Entry struct {
	Key string
	// Value may be shared with the backend and with other callers (memstore hands out the
	// bytes it stores, redisstore those its snapshots keep): it is read-only for everybody.
	Value     []byte
	Version   uint64 // the version of the entry's last upsert or (non-quiet) touch
	Epoch     string // the epoch of the tenant's state that Version belongs to
	CreatedAt int64  // when the key became live; kept while it stays live
	UpdatedAt int64  // the time of the last upsert or (non-quiet) touch
	ExpiresAt int64  // the entry is gone at this instant
	// Memo is a slot for a value derived from the entry's value, such as the value decoded by
	// the typed API (see [Memo]), when the backend keeps one beside the value; nil otherwise.
	// Every read gets the same Memo until an upsert writes a new value, which gets a new one
	// (a backend may keep the Memo for an upsert of the same bytes in the same epoch, as
	// redisstore's snapshots do): a touch keeps it, while it changes the version (unless
	// quiet) and the times, so what is kept in it must be checked against those.
	Memo *Memo
}

// Snapshot is the result of [Store.Snapshot].
type Snapshot struct {
	Entries []Entry // sorted by key in byte order
	Cursor  Cursor  // the position of the same instant in the tenant's event stream
}
