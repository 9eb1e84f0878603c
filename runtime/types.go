package runtime

import "time"

// Entry is one live entry of a store.
type Entry[T any] struct {
	Key     string
	Value   T
	Version uint64 // the version of the entry's last upsert or touch
	// CreatedAt is when the key became live; kept across upserts and touches, reset after a
	// remove or an expiry.
	CreatedAt time.Time
	UpdatedAt time.Time // time of the last upsert or (non-quiet) touch
	ExpiresAt time.Time // the entry is gone at this instant
}

// EventKind says what happened to a key.
type EventKind uint8

// The kinds of [Event].
const (
	EventUpsert   EventKind = iota + 1 // a key was created or replaced; Event.Entry holds it
	EventTouch                         // a key's TTL was extended; Event.ExpiresAt holds the new expiry
	EventDelete                        // a key was removed; Event.Reason holds the caller's reason
	EventExpire                        // a key reached its ExpiresAt
	EventOverflow                      // events were lost to the reader; re-snapshot (see Event)
)

var kindNames = [...]string{"", "upsert", "touch", "delete", "expire", "overflow"}

// String returns the kind's lower-case name, such as "upsert".
func (k EventKind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return "EventKind(" + itoa(uint64(k)) + ")"
}

// Event is one change of a tenant, as seen by a [Reader].
//
// An overflow event means that the events between After and FirstAvailable are no longer
// available: the reader's cursor fell behind the retained history, or the backend lost its state
// (the cursor's epoch is gone). The reader goes on with the events after FirstAvailable; a caller
// that keeps a replica re-snapshots instead.
type Event[T any] struct {
	Kind    EventKind
	Cursor  string // resume point: a reader started after Cursor receives the events after this one
	Key     string // empty on overflow
	Version uint64 // the version this change produced; 0 on overflow
	At      time.Time

	Entry     *Entry[T] // upsert: the entry as written
	ExpiresAt time.Time // touch: the new expiry
	Reason    string    // delete: the reason given to Remove, if any

	After          string // overflow: the cursor the reader had
	FirstAvailable string // overflow: the cursor the reader continues after
}

// TouchResult is the outcome of [Store.Touch].
type TouchResult struct {
	OK        bool      // false when the key was missing or expired; nothing was written then
	Version   uint64    // the entry's version after the touch (unchanged by a quiet touch)
	ExpiresAt time.Time // the entry's new expiry
}

// Snapshot is every live entry of a tenant (or of a key prefix in it) at one instant.
type Snapshot[T any] struct {
	Entries []Entry[T] // sorted by key, in byte order
	// Cursor is the position of the snapshot in the tenant's event stream: a reader started
	// after it receives every change the snapshot does not contain, and none that it does.
	Cursor string
}

func itoa(u uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			return string(b[i:])
		}
	}
}
