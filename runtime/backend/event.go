package backend

import "strconv"

// EventKind says what happened to a key.
type EventKind uint8

// The kinds of [Event].
const (
	EventUpsert   EventKind = iota + 1 // a key was created or replaced
	EventTouch                         // a key's TTL was extended
	EventDelete                        // a key was removed
	EventExpire                        // a key reached its ExpiresAt
	EventOverflow                      // events were lost to the reader (see Overflow)
)

var kindNames = [...]string{"", "upsert", "touch", "delete", "expire", "overflow"}

// String returns the kind's lower-case name, such as "upsert".
func (k EventKind) String() string {
	if k != 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one change of a tenant, with its value encoded. Which fields are set depends on
// the kind:
//
//	upsert    Key, Value, CreatedAt, ExpiresAt (UpdatedAt is At)
//	touch     Key, ExpiresAt (the new expiry)
//	delete    Key, Reason
//	expire    Key, ExpiresAt (the expiry reached)
//	overflow  After, FirstAvailable
//
// and Epoch, Version and At for all but overflow.
type Event struct {
	Kind      EventKind
	Epoch     string // the epoch of the tenant's state the event belongs to
	Version   uint64 // the version the change produced; 0 for overflow
	Key       string
	At        int64 // the time of the change; for an expire, when the backend removed the entry (>= ExpiresAt; see ephemeral.Event)
	CreatedAt int64
	ExpiresAt int64
	Value     []byte
	Reason    string

	After          Cursor // overflow: the position the reader had
	FirstAvailable Cursor // overflow: the position the reader continues after

	// Memo is the event's slot for a value derived from it once per process (see [Memo]),
	// set on the events of a shared [Log] and nil on others.
	Memo *Memo
}

// Cursor returns the position just after the event: a reader started after it receives the
// events that follow. For an overflow event it is FirstAvailable.
func (e *Event) Cursor() Cursor {
	if e.Kind == EventOverflow {
		return e.FirstAvailable
	}
	return Cursor{Epoch: e.Epoch, Seq: e.Version}
}

// Entry returns the entry an upsert event wrote.
func (e *Event) Entry() Entry {
	return Entry{Key: e.Key, Value: e.Value, Version: e.Version, Epoch: e.Epoch, CreatedAt: e.CreatedAt, UpdatedAt: e.At, ExpiresAt: e.ExpiresAt}
}

// Overflow returns the overflow event of a reader whose position is pos, in a tenant whose
// state is of epoch and retains the events of versions first to head (first is head+1 when it
// retains none), at time at; ok is false when the reader can go on reading, because the event
// after pos is retained or pos is the tenant's head.
//
// The events after pos are gone when pos is of another epoch (the state was lost and made
// anew), older than the oldest retained event, or newer than head (the state went back, as
// after a failover to a replica that lacked the last writes). The reader goes on after
// FirstAvailable, the position just before the oldest retained event.
func Overflow(pos Cursor, epoch string, first, head uint64, at int64) (ev Event, ok bool) {
	if pos.Epoch == epoch && pos.Seq+1 >= first && pos.Seq <= head {
		return Event{}, false
	}
	fa := Cursor{Epoch: epoch, Seq: first - 1}
	return Event{Kind: EventOverflow, Epoch: epoch, At: at, After: pos, FirstAvailable: fa}, true
}
