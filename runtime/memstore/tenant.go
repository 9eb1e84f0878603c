package memstore

import (
	"time"

	"github.com/ephemeral-go/ephemeral/runtime"
)

// scopeKey names the state of one (store ID, tenant).
type scopeKey struct{ id, tenant string }

// tenant is the state of one (store ID, tenant). All fields are guarded by Backend.mu.
type tenant struct {
	name    scopeKey
	epoch   string
	seq     uint64 // the last version given out; versions and event seqs are the same numbers
	entries map[string]*entry
	log     eventLog
	limits  runtime.Limits // of the last call, with defaults
	readers int            // open subscriptions
	last    int64          // ms of the last call or event that used the state
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
	created int64 // ms since the Unix epoch, like updated and expires
	updated int64
	expires int64
	due     int64 // the time the entry is queued for in the heap; due <= expires
	t       *tenant
	index   int // in the heap; -1 when not in it
}

func (e *entry) raw() runtime.RawEntry {
	return runtime.RawEntry{
		Key:       e.key,
		Value:     e.value,
		Version:   e.version,
		CreatedAt: msTime(e.created),
		UpdatedAt: msTime(e.updated),
		ExpiresAt: msTime(e.expires),
	}
}

// event is one entry of a tenant's event log; its fields are those of runtime.RawEvent, in
// milliseconds.
type event struct {
	kind    runtime.EventKind
	seq     uint64
	at      int64
	key     string
	value   []byte // upsert
	created int64  // upsert
	expires int64  // upsert, touch
	reason  string // delete
}

func (ev *event) raw(epoch string) runtime.RawEvent {
	r := runtime.RawEvent{
		Kind:    ev.kind,
		Cursor:  runtime.Cursor{Epoch: epoch, Seq: ev.seq},
		Key:     ev.key,
		Version: ev.seq,
		At:      msTime(ev.at),
		Reason:  ev.reason,
	}
	switch ev.kind {
	case runtime.EventUpsert:
		r.Entry = runtime.RawEntry{
			Key:       ev.key,
			Value:     ev.value,
			Version:   ev.seq,
			CreatedAt: msTime(ev.created),
			UpdatedAt: r.At,
			ExpiresAt: msTime(ev.expires),
		}
		r.ExpiresAt = r.Entry.ExpiresAt
	case runtime.EventTouch:
		r.ExpiresAt = msTime(ev.expires)
	}
	return r
}

// eventLog is a ring buffer of the retained events of a tenant, oldest first. Their seqs are
// consecutive: the log holds the events first() to first()+len-1.
type eventLog struct {
	buf  []event
	head int // index of the oldest event in buf
	n    int
}

// at returns the i-th oldest retained event.
func (l *eventLog) at(i int) *event {
	return &l.buf[(l.head+i)%len(l.buf)]
}

// push appends ev, first dropping the oldest events so that at most limit remain.
func (l *eventLog) push(ev event, limit int) {
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
	buf := make([]event, size)
	for i := range l.n {
		buf[i] = *l.at(i)
	}
	l.buf, l.head = buf, 0
}

func (l *eventLog) dropOldest() {
	l.buf[l.head] = event{} // release the key and value
	l.head = (l.head + 1) % len(l.buf)
	l.n--
}

// dropBefore drops the events that happened before ms.
func (l *eventLog) dropBefore(ms int64) {
	for l.n > 0 && l.at(0).at < ms {
		l.dropOldest()
	}
}

// first returns the seq of the oldest event the tenant still has, given its last seq: the
// seq after the last one when the log is empty.
func (t *tenant) first() uint64 {
	return t.seq - uint64(t.log.n) + 1
}

// cursor returns the cursor of the tenant's position just after seq.
func (t *tenant) cursor(seq uint64) runtime.Cursor {
	return runtime.Cursor{Epoch: t.epoch, Seq: seq}
}

// unusedAt returns the first instant at which the last use of t, and so every event of t, is
// older than the retention.
func (t *tenant) unusedAt() int64 {
	return t.last + t.limits.EventRetention.Milliseconds() + 1
}

// trim drops the events older than the retention at now.
func (t *tenant) trim(now int64) {
	t.log.dropBefore(now - t.limits.EventRetention.Milliseconds())
}

// appendEvent gives ev the next version, logs it and wakes the waiting readers. It returns the
// version.
func (t *tenant) appendEvent(ev event) uint64 {
	t.seq++
	ev.seq = t.seq
	t.last = max(t.last, ev.at)
	t.trim(ev.at)
	t.log.push(ev, t.limits.MaxEvents)
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

// idle reports whether the tenant holds nothing that needs its state kept but its events.
func (t *tenant) idle() bool {
	return len(t.entries) == 0 && t.readers == 0
}

// msTime converts milliseconds since the Unix epoch to a time in UTC.
func msTime(ms int64) time.Time {
	return time.UnixMilli(ms).UTC()
}
