package redisstore

import (
	"bytes"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// maxKept is the most entry values a store keeps (their bytes, and from their second read a
// memo), over all its tenants (see memoCache): with presence values of 137 bytes, 642 bytes a
// value with its decoded form (BenchmarkKeptMemory), so some 42 MB at the limit.
const maxKept = 1 << 16

// memoCache keeps, for one tenant, the bytes of each entry value its snapshots read, and from
// the second snapshot that reads them a memo (see [backend.Entry.Memo]): the later snapshots
// that read the same bytes for the key hand out the same bytes and the same memo, so that
// they copy no value, and the typed layer decodes a value once per process and copies it (the
// codec's Clone) at the snapshots after, as it does on memstore. (A memo at the first read
// would cost a value read only once a clone beside its decode.)
// A typed snapshot of 10,000 unchanged presence values took 1.2–1.4 times as long as an
// HGETALL of them with the memos, instead of 1.4–2.4 times (docs/PERFORMANCE.md). A memo goes
// with exact bytes, not with a version: a touch changes the version and keeps the bytes, an
// upsert of other bytes gets a new memo, and the typed layer checks the version and times it
// kept against the entry's. The bytes kept are those a snapshot handed out, read-only, and
// never written again: new bytes of a key are a new copy. The keys are copies: nothing kept
// pins a reply or a snapshot's keys.
//
// The refs are sorted by key, as snapshots are, so that a snapshot finds its entries' bytes in
// one walk beside them rather than a lookup each. A snapshot of the whole tenant (no prefix)
// makes the refs anew of its entries, in place when its keys are the ones kept; one of a
// prefix only reads them. A new epoch empties the cache.
type memoCache struct {
	mu    sync.Mutex
	epoch string
	refs  []memoRef
	spare []memoRef // the array of the refs before, to make the next ones in
	src   []int32   // keepValues' scratch: the ref of each entry
}

// memoRef is one key's value as snapshots read it: its bytes and, from their second read, its
// memo.
type memoRef struct {
	key   string
	value []byte        // handed out with the entries, read-only: never written
	memo  *backend.Memo // nil until the second read
}

// memoCache returns the slot's cache, made on first use.
func (s *tenantSlot) memoCache() *memoCache {
	if c := s.memos.Load(); c != nil {
		return c
	}
	s.memos.CompareAndSwap(nil, new(memoCache))
	return s.memos.Load()
}

// dropMemos empties the cache of a slot that another tenant's replaced, and takes its values
// off the store's count.
func (s *tenantSlot) dropMemos(st *store) {
	c := s.memos.Load()
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st.kept.Add(-int64(len(c.refs)))
	c.refs, c.spare = nil, nil
}

// keepValues gives the entries of a snapshot of the slot's tenant in epoch, sorted by key,
// values of their own: they alias the reply's buffer, which the next snapshot reuses. An
// entry whose bytes the cache holds gets the cache's bytes, shared (values handed out are
// read-only, see [backend.Entry]; the cache never writes into bytes it kept), and its memo,
// made by the second whole snapshot that reads them; the others get a copy, all in one
// allocation. A snapshot of unchanged values thus copies none of them: one of 10,000 presence
// values allocates 4.3 MB instead of 5.6 (docs/PERFORMANCE.md).
// whole says that the snapshot is of the whole tenant: the cache then keeps its entries'
// bytes, and no others, while the store keeps at most maxKept values (the entries beyond get
// a copy and no memo, and are decoded at every read).
func (st *store) keepValues(s *tenantSlot, epoch string, entries []backend.Entry, whole bool) {
	c := s.memoCache()
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := s.at.Load(); cur == nil || cur.memos.Load() != c {
		// The slot was replaced, by another tenant's (which drops the cache after) or by
		// the tenant's own of a new epoch made before this cache: nothing is kept, so that
		// every value counted is in a slot of st.tenants.
		own := newOwner(entries, nil)
		for i := range entries {
			own.copy(&entries[i])
		}
		return
	}
	if c.epoch != epoch {
		st.kept.Add(-int64(len(c.refs)))
		clear(c.refs)
		c.epoch, c.refs = epoch, c.refs[:0]
	}
	old := c.refs
	// src[i] is the ref in old that holds the bytes of entries[i], or -1: one walk beside
	// them, from the first key of the snapshot on. aligned says that the keys are those kept.
	src := slices.Grow(c.src[:0], len(entries))[:len(entries)]
	c.src = src
	j := 0
	if !whole && len(entries) > 0 {
		j = sort.Search(len(old), func(i int) bool { return old[i].key >= entries[0].Key })
	}
	aligned := whole && len(entries) == len(old)
	for i := range entries {
		e := &entries[i]
		eq := j < len(old) && old[j].key == e.Key // most often: no order compared
		if !eq {
			for j < len(old) && old[j].key < e.Key {
				j++
			}
			eq = j < len(old) && old[j].key == e.Key
			aligned = false
		}
		src[i] = -1
		if eq {
			if old[j].holds(e) {
				src[i] = int32(j)
			}
			j++
		}
	}
	own := newOwner(entries, src)
	if !whole {
		// Only the values kept: their memos are nil until a whole snapshot read them twice.
		for i := range entries {
			if k := src[i]; k >= 0 {
				old[k].hand(&entries[i], false)
			} else {
				own.copy(&entries[i])
			}
		}
		return
	}
	n := int(min(int64(len(entries)), st.maxKept-(st.kept.Load()-int64(len(old)))))
	n = max(n, 0)
	if aligned && n == len(old) {
		// Most often the keys kept: one walk, in place.
		for i := range entries {
			if src[i] >= 0 {
				old[i].hand(&entries[i], true)
			} else {
				own.copy(&entries[i])
				old[i].keep(&entries[i])
			}
		}
		return
	}
	refs := slices.Grow(c.spare[:0], n)[:n] // every ref is set below
	for i := range entries {
		e := &entries[i]
		switch k := src[i]; {
		case i >= n:
			own.copy(e)
		case k >= 0:
			refs[i] = old[k]
			refs[i].hand(e, true)
		default:
			own.copy(e)
			refs[i] = memoRef{key: strings.Clone(e.Key)}
			refs[i].keep(e)
		}
	}
	clear(old) // what it held is copied or dropped
	c.refs, c.spare = refs, old[:0]
	st.kept.Add(int64(n - len(old)))
}

// owner copies the values of a snapshot's entries that need a copy into one allocation, each
// capped at its end, so that appending to one cannot change another.
type owner struct{ buf []byte }

// newOwner returns the owner of the values of the entries that src marks -1 (every entry when
// src is nil).
func newOwner(entries []backend.Entry, src []int32) owner {
	size := 0
	for i := range entries {
		if src == nil || src[i] < 0 {
			size += len(entries[i].Value)
		}
	}
	return owner{make([]byte, 0, size)} // not nil when empty: nor are the values
}

// copy gives e a copy of its value.
func (o *owner) copy(e *backend.Entry) {
	start := len(o.buf)
	o.buf = append(o.buf, e.Value...)
	e.Value = o.buf[start:len(o.buf):len(o.buf)]
}

// hand gives e, whose bytes r holds, r's bytes and memo; with memo, a memo made if r has none.
func (r *memoRef) hand(e *backend.Entry, memo bool) {
	if memo && r.memo == nil {
		r.memo = new(backend.Memo)
	}
	e.Value, e.Memo = r.value, r.memo
}

// keep makes r hold e's value, which is e's own, read for the first time: no memo, as a value
// read once is decoded once, and a memo would add a clone to its decode.
func (r *memoRef) keep(e *backend.Entry) {
	r.value, r.memo = e.Value, nil
}

// holds reports whether r holds e's bytes. It compares them, whatever the versions: the
// scripts never write two values of one version in an epoch, but a server that went back to
// older data (restarted from an older RDB file, or a replica that missed the last writes
// promoted) keeps the epoch and gives its next writes the versions over again.
func (r *memoRef) holds(e *backend.Entry) bool { return bytes.Equal(r.value, e.Value) }
