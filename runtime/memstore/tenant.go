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
	// log holds the retained events, shared with the readers, who read it without the lock.
	log     *backend.Log
	readers int   // open subscriptions
	last    int64 // ms of the last call or event that used the state
	trimmed int64 // ms of the last trim by an append
	// sweep is the tenant's item in the expiry heap while it may be idle or has events: when
	// it falls due, it drops the events older than the retention, and if the tenant is idle
	// with none left, the tenant's state is freed.
	sweep entry
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

// fill sets every field of *dst to e's, with memo as its Memo. It sets them one by one: an
// entry built as a backend.Entry{...} and then copied is copied with 16-byte loads of its
// 8-byte stores, as backend.Log.Append explains: a memstore snapshot of 10,000 entries took
// 733 µs so against 642 µs (means of six rounds, docs/PERFORMANCE.md).
func (e *entry) fill(dst *backend.Entry, memo *backend.Memo) {
	dst.Key, dst.Value, dst.Version, dst.Epoch = e.key, e.value, e.version, e.t.epoch
	dst.CreatedAt, dst.UpdatedAt, dst.ExpiresAt, dst.Memo = e.created, e.updated, e.expires, memo
}

// read is the entry, with the memo of the value (made if needed), for a Get.
func (e *entry) read() backend.Entry {
	var ent backend.Entry
	e.readInto(&ent)
	return ent
}

// readInto sets *dst to read's entry, for a Snapshot.
func (e *entry) readInto(dst *backend.Entry) {
	if e.memo == nil {
		e.memo = new(backend.Memo)
	}
	e.fill(dst, e.memo)
}

// first returns the seq of the oldest event the tenant still has, given its last seq: the
// seq after the last one when the log is empty.
func (t *tenant) first() uint64 {
	return t.log.First()
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
	t.log.DropBefore(now - t.st.retention)
}

// appendEvent gives ev the tenant's epoch and the next version, logs it and wakes the waiting
// readers. It returns the version. It drops the events older than the retention once per
// millisecond: a reader checks the age of each event it reads anyway, and the calls that
// report an overflow trim first. And it makes sure the tenant's sweep is queued, which drops
// them once the retention has passed (also for a tenant left alone that stays in use, an
// entry of a long TTL, whose events no write would drop) and frees the state of one left
// idle: a sweep already queued, for an earlier time, queues itself again (see sweep).
func (t *tenant) appendEvent(ev *backend.Event) uint64 {
	t.seq++
	ev.Epoch, ev.Version = t.epoch, t.seq
	t.last = max(t.last, ev.At)
	if ev.At != t.trimmed {
		t.trimmed = ev.At
		t.trim(ev.At)
	}
	t.log.Append(ev)
	b := t.st.b
	if t.sweep.index < 0 {
		b.scheduleSweep(t)
	}
	switch b.wake {
	case nil:
		b.wake = t.log // woken by unlock, after the lock is released
	case t.log:
	default:
		t.log.Wake() // a second tenant in one hold of the lock, as in a mass expiry
	}
	return t.seq
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
