package memstore

import (
	"container/heap"
	"math"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// never is the armed time of a stopped scheduler timer.
const never = math.MaxInt64

// expiryHeap is a min-heap of entries by due time, over all tenants of a backend. Each entry
// knows its index, so a remove or a shortened TTL fixes the heap in place and there are no stale
// items. A tenant's sweep item lives here too while the tenant is idle or has events.
type expiryHeap []*entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].due < h[j].due }

func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *expiryHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *expiryHeap) Pop() any {
	old := *h
	n := len(old) - 1
	e := old[n]
	old[n] = nil
	*h = old[:n]
	e.index = -1
	return e
}

// schedule makes the heap wake for e by e.expires. An entry already queued for an earlier time
// stays where it is and is requeued when that time comes (see expireDue): upserts and touches
// that extend a TTL, the common case, cost no heap operation.
func (b *Backend) schedule(e *entry) {
	switch {
	case e.index < 0:
		e.due = e.expires
		heap.Push(&b.heap, e)
	case e.expires < e.due:
		e.due = e.expires
		heap.Fix(&b.heap, e.index)
	}
}

// unschedule takes e out of the heap.
func (b *Backend) unschedule(e *entry) {
	if e.index >= 0 {
		heap.Remove(&b.heap, e.index)
	}
}

// expireDue removes the entries due at now, with their expire events, and frees the tenants
// whose sweep found them idle; it handles at most limit heap items (any number if limit is
// negative) and reports whether more are due. Every call reconciles everything first, so no
// call sees an expired entry as live and events stay in time order.
func (b *Backend) expireDue(now int64, limit int) (more bool) {
	for ; len(b.heap) > 0 && b.heap[0].due <= now; limit-- {
		if limit == 0 {
			return true
		}
		e := b.heap[0]
		if e.expires > e.due { // extended since it was queued: requeue, so expiries go in order
			e.due = e.expires
			heap.Fix(&b.heap, 0)
			continue
		}
		heap.Pop(&b.heap)
		if e.key == "" {
			b.sweep(e.t, now)
			continue
		}
		t := e.t
		t.delete(e)
		t.appendEvent(&backend.Event{Kind: backend.EventExpire, At: e.expires, Key: e.key, ExpiresAt: e.expires})
		b.obs.Expired(t.st.id, t.name, 1) // the event queued the sweep
	}
	return false
}

// scheduleSweep schedules the sweep of t (see sweep) for when its last use is older than its
// event retention.
func (b *Backend) scheduleSweep(t *tenant) {
	t.sweep.expires = t.unusedAt()
	b.schedule(&t.sweep)
}

// sweep drops t's events older than the retention, and frees t's state when it has no
// entries, readers or retained events and has not been used for its event retention. It
// checks again later while events are left, or, for an idle tenant, while the time is
// missing; otherwise an entry or a reader keeps the state, and the next event or the tenant
// going idle schedules it again. That later time is after now: an event still retained at
// now happened at or after now - retention, so t.last + retention + 1 > now.
func (b *Backend) sweep(t *tenant, now int64) {
	t.trim(now)
	idle := t.idle()
	switch {
	case idle && t.log.Len() == 0 && now >= t.unusedAt():
		delete(t.st.tenants, t.name)
		if t.st.recent == t {
			t.st.recent = nil
		}
	case idle || t.log.Len() > 0:
		b.scheduleSweep(t)
	}
}

// rearm sets the timer for the earliest item of the heap if that is earlier than the time the
// timer is set for.
func (b *Backend) rearm() {
	if len(b.heap) == 0 {
		return
	}
	if at := b.heap[0].due; at < b.armed {
		b.armed = at
		b.timer.Set(time.UnixMilli(at))
	}
}

// schedulerBatch is the most heap items the scheduler handles under one hold of the lock, so
// that a mass expiry does not stall the calls.
const schedulerBatch = 1024

// run is the backend's one scheduler goroutine: it wakes when the timer fires and removes
// what is due, in batches.
func (b *Backend) run() {
	defer close(b.stopped)
	for {
		select {
		case <-b.done:
			return
		case <-b.timer.C():
		}
		for more := true; more; {
			b.mu.Lock()
			b.armed = never
			more = b.expireDue(b.now(), schedulerBatch)
			b.unlock()
		}
	}
}
