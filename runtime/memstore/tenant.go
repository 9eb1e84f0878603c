package memstore

import (
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/tidwall/btree"
)

// tenant is the state of one (store ID, tenant). All fields are guarded by Backend.mu.
type tenant struct {
	st    *store
	name  string
	epoch string
	seq   uint64 // the last version given out; versions and event seqs are the same numbers
	// index holds the entries of the map entries sorted by key, for snapshots: a scan in key
	// order from the prefix, with no sort. Upserts of live keys, touches and gets do not use it.
	index   *btree.BTreeG[*entry]
	entries map[string]*entry
	log     eventLog
	readers int   // open subscriptions
	last    int64 // ms of the last call or event that used the state
	// sweep is the tenant's item in the expiry heap while it may be idle: when it falls due
	// and the tenant is still idle, the tenant's state is freed.
	sweep entry
	// notify is closed and cleared when an event is appended; nil while no reader waits.
	notify chan struct{}
}

// entry is a live key, and also the item of the expiry heap.
type entry struct {
	key     string // "" marks a tenant's sweep item
	value   []byte
	version uint64
	// memo is the memo of value (see backend.Memo), made by the first read of the value and
	// dropped when the value changes; nil until then.
	memo    *backend.Memo
	created int64 // ms since the Unix epoch, like updated and expires
	updated int64
	expires int64
	due     int64 // the time the entry is queued for in the heap; due <= expires
	t       *tenant
	index   int // in the heap; -1 when not in it
}

func (e *entry) entry() backend.Entry {
	return backend.Entry{
		Key:       e.key,
		Value:     e.value,
		Version:   e.version,
		CreatedAt: e.created,
		UpdatedAt: e.updated,
		ExpiresAt: e.expires,
	}
}

// read is entry, with the memo of the value (made if needed), for a Get or a Snapshot.
func (e *entry) read() backend.Entry {
	if e.memo == nil {
		e.memo = new(backend.Memo)
	}
	ent := e.entry()
	ent.Memo = e.memo
	return ent
}

// eventLog is a ring buffer of the retained events of a tenant, oldest first. Their seqs are
// consecutive: the log holds the events first() to first()+len-1.
type eventLog struct {
	buf  []backend.Event
	head int // index of the oldest event in buf
	n    int
}

// at returns the i-th oldest retained event.
func (l *eventLog) at(i int) *backend.Event {
	return &l.buf[(l.head+i)%len(l.buf)]
}

// push appends ev, first dropping the oldest events so that at most limit remain.
func (l *eventLog) push(ev backend.Event, limit int) {
	for l.n > 0 && l.n >= limit {
		l.dropOldest()
	}
	if l.n == len(l.buf) {
		l.grow(limit)
	}
	l.buf[(l.head+l.n)%len(l.buf)] = ev
	l.n++
}

// grow makes room for more events, up to limit.
func (l *eventLog) grow(limit int) {
	size := min(max(2*len(l.buf), 8), limit)
	buf := make([]backend.Event, size)
	for i := range l.n {
		buf[i] = *l.at(i)
	}
	l.buf, l.head = buf, 0
}

func (l *eventLog) dropOldest() {
	l.buf[l.head] = backend.Event{} // release the key and value
	l.head = (l.head + 1) % len(l.buf)
	l.n--
}

// dropBefore drops the events that happened before ms.
func (l *eventLog) dropBefore(ms int64) {
	for l.n > 0 && l.at(0).At < ms {
		l.dropOldest()
	}
}

// first returns the seq of the oldest event the tenant still has, given its last seq: the
// seq after the last one when the log is empty.
func (t *tenant) first() uint64 {
	return t.seq - uint64(t.log.n) + 1
}

// cursor returns the cursor of the tenant's position just after seq.
func (t *tenant) cursor(seq uint64) backend.Cursor {
	return backend.Cursor{Epoch: t.epoch, Seq: seq}
}

// unusedAt returns the first instant at which the last use of t, and so every event of t, is
// older than the retention.
func (t *tenant) unusedAt() int64 {
	return t.last + t.st.retention + 1
}

// trim drops the events older than the retention at now.
func (t *tenant) trim(now int64) {
	t.log.dropBefore(now - t.st.retention)
}

// appendEvent gives ev the tenant's epoch and the next version, logs it and wakes the waiting
// readers. It returns the version.
func (t *tenant) appendEvent(ev backend.Event) uint64 {
	t.seq++
	ev.Epoch, ev.Version = t.epoch, t.seq
	t.last = max(t.last, ev.At)
	t.trim(ev.At)
	t.log.push(ev, t.st.limits.MaxEvents)
	if t.notify != nil {
		close(t.notify)
		t.notify = nil
	}
	return t.seq
}

// wait returns a channel that is closed when the next event is appended.
func (t *tenant) wait() <-chan struct{} {
	if t.notify == nil {
		t.notify = make(chan struct{})
	}
	return t.notify
}

// byKey orders entries by key, for tenant.index.
func byKey(a, b *entry) bool { return a.key < b.key }

// newIndex returns an empty tenant.index.
func newIndex() *btree.BTreeG[*entry] {
	return btree.NewBTreeGOptions(byKey, btree.Options{NoLocks: true})
}

// idle reports whether the tenant holds nothing that needs its state kept but its events.
func (t *tenant) idle() bool {
	return len(t.entries) == 0 && t.readers == 0
}
