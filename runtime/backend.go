package runtime

import (
	"context"
	"time"
)

// Backend keeps the state of stores: encoded values, versions, expiries and event streams, per
// (store ID, tenant). runtime/memstore and runtime/redisstore implement it; [Store] is the typed
// API over it. All methods are safe for concurrent use.
//
// The [Store] validates every argument before it calls a backend (key, tenant, ID, TTL, payload
// size, cursor syntax), so a backend may rely on valid arguments. A backend enforces
// Limits.MaxEntries, the conditions and the event limits itself, atomically with the write.
// Every method either applies its change completely, with exactly one event (none for a quiet
// touch), or not at all.
//
// Conformance: runtime/storetest checks a backend against the whole contract.
type Backend interface {
	// Upsert creates or replaces req.Key. The backend may keep req.Value; the caller does not
	// modify it afterwards. Fails with ErrCapacity, ErrConflict.
	Upsert(ctx context.Context, s Scope, req UpsertRequest) (RawEntry, error)
	// Touch extends the TTL of a live key. A missing or expired key is not an error:
	// TouchResult.OK is false (unless a condition fails: ErrConflict).
	Touch(ctx context.Context, s Scope, req TouchRequest) (TouchResult, error)
	// Remove deletes a live key and reports whether it was live.
	Remove(ctx context.Context, s Scope, req RemoveRequest) (bool, error)
	// Get returns a live entry. An entry at or past its ExpiresAt is never returned.
	Get(ctx context.Context, s Scope, key string) (RawEntry, bool, error)
	// Snapshot returns the live entries whose keys start with prefix, sorted by key in byte
	// order, and the cursor of the same instant.
	Snapshot(ctx context.Context, s Scope, prefix string) (RawSnapshot, error)
	// Subscribe starts a stream of the tenant's events. Its position is fixed when Subscribe
	// returns: with a nil req.After, events after that moment; otherwise events after
	// *req.After (an overflow event first, if that cursor is no longer available).
	Subscribe(ctx context.Context, s Scope, req SubscribeRequest) (Subscription, error)
}

// Subscription is a backend's stream of raw events for one reader.
type Subscription interface {
	// Start returns the position the subscription started after: *SubscribeRequest.After, or
	// the tenant's position when Subscribe returned.
	Start() Cursor
	// Next blocks until the next event, ctx is done (ctx.Err() is returned) or the
	// subscription or its backend is closed (ErrClosed). Not safe for concurrent calls.
	Next(ctx context.Context) (RawEvent, error)
	// Close ends the subscription and releases its resources; Next then returns ErrClosed.
	// Close is idempotent and safe to call concurrently with Next.
	Close() error
}

// Scope names the state a backend call works on, with the limits of the store that makes it.
type Scope struct {
	ID     string
	Tenant string
	Limits Limits
}

// Limits bound one tenant's state. The zero value of a field means its default.
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

// CondKind is the kind of a write [Condition].
type CondKind uint8

// Condition kinds.
const (
	CondNone      CondKind = iota // write unconditionally
	CondIfNew                     // the key is not live (missing or expired)
	CondIfExists                  // the key is live
	CondIfVersion                 // the key is live and its version is Condition.Version
)

// Condition guards a write; when it does not hold the write fails with ErrConflict.
type Condition struct {
	Kind    CondKind
	Version uint64 // for CondIfVersion
}

// UpsertRequest is the input of [Backend.Upsert].
type UpsertRequest struct {
	Key   string
	Value []byte        // the codec's output, stored and returned byte for byte
	TTL   time.Duration // > 0, a whole number of milliseconds
	Cond  Condition
}

// TouchRequest is the input of [Backend.Touch].
type TouchRequest struct {
	Key   string
	TTL   time.Duration // > 0, a whole number of milliseconds
	Quiet bool          // extend the expiry only: no new version, no UpdatedAt change, no event
	Cond  Condition     // CondNone or CondIfVersion
}

// RemoveRequest is the input of [Backend.Remove].
type RemoveRequest struct {
	Key    string
	Reason string    // carried by the delete event
	Cond   Condition // CondNone or CondIfVersion
}

// SubscribeRequest is the input of [Backend.Subscribe].
type SubscribeRequest struct {
	After  *Cursor // nil: start now
	Prefix string  // deliver only events of keys with this prefix (overflow events always)
}

// RawEntry is an entry with its value still encoded.
type RawEntry struct {
	Key       string
	Value     []byte
	Version   uint64
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time
}

// RawSnapshot is the result of [Backend.Snapshot].
type RawSnapshot struct {
	Entries []RawEntry // sorted by key in byte order
	Cursor  Cursor
}

// RawEvent is an event with its value still encoded. Its fields mean what those of [Event] do.
type RawEvent struct {
	Kind      EventKind
	Cursor    Cursor // for all kinds but overflow, Cursor.Seq == Version
	Key       string
	Version   uint64
	At        time.Time
	Entry     RawEntry // upsert
	ExpiresAt time.Time
	Reason    string
	// overflow
	After          Cursor
	FirstAvailable Cursor
}
