package ephemeral

import (
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// Backend keeps the state of stores: runtime/memstore in one process, runtime/redisstore on
// Redis. Stores of any number of IDs and types may share one.
type Backend = backend.Backend

// Limits bound the state of every tenant of a store. The zero value of a field means its default:
// 10,000 live entries, 4,096-byte values, events kept 5 minutes and at most 50,000.
//
// Limits belong to a store ID: all stores of one ID on one backend must have the same limits
// (New fails with [ErrInvalidConfig] otherwise), so that every tenant is governed by one set.
// Across processes on Redis, each process applies its own limits to its own calls: keep them
// equal, or let a rolling deploy change them.
type Limits = backend.Limits

// EventKind says what happened to a key.
type EventKind = backend.EventKind

// The kinds of [Event].
const (
	EventUpsert   = backend.EventUpsert   // a key was created or replaced; Event.Value holds the value
	EventTouch    = backend.EventTouch    // a key's TTL was extended; Event.ExpiresAt holds the new expiry
	EventDelete   = backend.EventDelete   // a key was removed; Event.Reason holds the caller's reason
	EventExpire   = backend.EventExpire   // a key reached its ExpiresAt
	EventOverflow = backend.EventOverflow // events were lost to the reader; re-snapshot (see Event)
)

// Entry is one live entry of a store.
type Entry[K, T any] struct {
	Key     K
	Value   T
	Version uint64 // the version of the entry's last upsert or (non-quiet) touch
	// Epoch is the epoch of the tenant's state that Version belongs to. Versions restart under
	// a new epoch when the tenant's state is created anew (after every key expired and the
	// events ran out of retention, or a Redis server lost its data), and a later epoch sorts
	// after an earlier one as a string: the pair (Epoch, Version), which [IfCursor] guards a
	// write with, names one write for the tenant's whole life, in time order (see [IfCursor]).
	Epoch string
	// CreatedAt is when the key became live; kept across upserts and touches, reset after a
	// remove or an expiry.
	CreatedAt time.Time
	UpdatedAt time.Time // time of the last upsert or (non-quiet) touch
	ExpiresAt time.Time // the entry is gone at this instant
}

// Event is one change of a tenant, as seen by a [Reader]. Which fields are set depends on the
// kind:
//
//	upsert    Key, Version, At, Value, CreatedAt, ExpiresAt
//	touch     Key, Version, At, ExpiresAt (the new expiry)
//	delete    Key, Version, At, Reason
//	expire    Key, Version, At, ExpiresAt (the expiry reached)
//	overflow  After
//
// and Cursor for all. [Event.Entry] gives an upsert's fields as the [Entry] it wrote.
//
// An overflow event means that the events between After and Cursor are no longer available:
// the reader's cursor fell behind the retained history, or the backend lost its state (the
// cursor's epoch is gone). The reader goes on with the events after Cursor; a caller that keeps
// a replica re-snapshots instead.
//
// An Event is a value: a reader of many events allocates nothing for them.
type Event[K, T any] struct {
	Kind    EventKind
	Key     K      // the zero K on overflow
	Version uint64 // the version this change produced; 0 on overflow
	// Cursor is the resume point: a reader started after Cursor receives the events after this
	// one. On overflow it is the position the reader continues after, the first available
	// (there is no FirstAvailable field beside it: it would always equal Cursor).
	Cursor string
	// At is when the change was made, by the backend's clock. For an expire event it is when
	// the backend removed the entry, never before ExpiresAt (the expiry reached; Get and
	// Snapshot hide the entry from then on either way): memstore removes an entry at its
	// ExpiresAt and reports that instant; runtime/redisstore reports the Redis server's time
	// of the call that removed it, a reader pump's tick within milliseconds of ExpiresAt while
	// a reader of the tenant is open, else the tenant's next write. At minus ExpiresAt is how
	// late the removal came.
	At time.Time

	// Value is, for an upsert, the value written; the zero T for the other kinds, and for an
	// upsert whose value did not decode.
	Value     T
	CreatedAt time.Time // upsert: when the key became live (see Entry.CreatedAt)
	ExpiresAt time.Time // upsert and touch: the new expiry; expire: the expiry reached
	Reason    string    // delete: the reason given to Remove, if any
	After     string    // overflow: the cursor the reader had

	// The fields above but Key and Value take 136 bytes on 64-bit platforms: 8 more make them
	// a multiple of 16, so that an event whose key and value are of sizes that are multiples
	// of 16 too (strings, structs of strings) is copied in whole 16-byte moves, without the
	// overlapping last move that stalls a copy made right after another on amd64 (see
	// docs/PERFORMANCE.md, "A flat Event").
	_ [8]byte
}

// Entry returns the entry an upsert event wrote: its key, value, version and times, with the
// epoch of its Cursor. For the other kinds it holds what the event says of the key, with the
// zero value.
func (e Event[K, T]) Entry() Entry[K, T] {
	c, _ := backend.ParseCursor(e.Cursor) // the zero Cursor for the zero Event
	return Entry[K, T]{Key: e.Key, Value: e.Value, Version: e.Version, Epoch: c.Epoch,
		CreatedAt: e.CreatedAt, UpdatedAt: e.At, ExpiresAt: e.ExpiresAt}
}

// TouchResult is the outcome of [Store.Touch].
type TouchResult struct {
	OK        bool      // false when the key was missing or expired; nothing was written then
	Version   uint64    // the entry's version after the touch (unchanged by a quiet touch)
	ExpiresAt time.Time // the entry's new expiry
}

// Snapshot is every live entry of a tenant (or of a key prefix in it) at one instant.
type Snapshot[K, T any] struct {
	Entries []Entry[K, T] // sorted by the string form of their keys, in byte order
	// Cursor is the position of the snapshot in the tenant's event stream: a reader started
	// after it receives every change the snapshot does not contain, and none that it does.
	Cursor string
}

// msTime converts the Unix milliseconds of a backend to a time in UTC.
func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
