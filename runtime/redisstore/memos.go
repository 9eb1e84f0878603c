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
// memo), over all its tenants (see memoCache): some 30 MB with values of 150 bytes, a copy of
// each and its decoded form.
const maxKept = 1 << 16

// memoCache keeps, for one tenant, a copy of the bytes of each entry value its snapshots read,
// and from the second snapshot that reads them a memo (see [backend.Entry.Memo]): the later
// snapshots that read the same bytes for the key hand out the same memo, so that the typed
// layer decodes a value once per process and copies it (the codec's Clone) at the snapshots
// after, as it does on memstore. (A memo at the first read would cost a value read only once
// a clone beside its decode.)
// A typed snapshot of 10,000 unchanged presence values took 1.2–1.4 times as long as an
// HGETALL of them, instead of 1.4–2.4 times (docs/PERFORMANCE.md). A memo goes with exact
// bytes, not with a version: a touch changes the version and keeps the bytes, an upsert of
// other bytes gets a new memo, and the typed layer checks the version and times it kept
// against the entry's. The keys and values kept are copies: nothing a caller holds pins a
// reply, and nothing a caller changes changes them.
//
// The refs are sorted by key, as snapshots are, so that a snapshot finds its entries' memos in
// one walk beside them rather than a lookup each. A snapshot of the whole tenant (no prefix)
// makes the refs anew of its entries, in place when its keys are the ones kept; one of a
// prefix only reads them. A new epoch empties the cache.
type memoCache struct {
	mu    sync.Mutex
	epoch string
	refs  []memoRef
	spare []memoRef // the array of the refs before, to make the next ones in
}

// memoRef is one key's value as snapshots read it: its bytes and, from their second read, its
// memo.
type memoRef struct {
	key     string
	value   []byte        // never handed out
	version uint64        // the version they were last read at: the same version has the same bytes
	memo    *backend.Memo // nil until the second read
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

// attachMemos sets the Memo of each entry of a snapshot of the slot's tenant in epoch, sorted by
// key, whose bytes the cache holds: their memo, made by the second whole snapshot that reads
// them. whole says that the snapshot is of the whole tenant: the cache then keeps its entries'
// bytes, and no others, while the store keeps at most maxKept values (the entries beyond get
// no memo, and are decoded at every read).
func (st *store) attachMemos(s *tenantSlot, epoch string, entries []backend.Entry, whole bool) {
	c := s.memoCache()
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := s.at.Load(); cur == nil || cur.memos.Load() != c {
		// The slot was replaced, by another tenant's (which drops the cache after) or by
		// the tenant's own of a new epoch made before this cache: nothing is kept, so that
		// every memo counted is in a slot of st.tenants.
		return
	}
	if c.epoch != epoch {
		st.kept.Add(-int64(len(c.refs)))
		clear(c.refs)
		c.epoch, c.refs = epoch, c.refs[:0]
	}
	old := c.refs
	if !whole {
		// Only the memos kept: from the first key of the snapshot on, in one walk.
		if len(entries) > 0 {
			old = old[sort.Search(len(old), func(i int) bool { return old[i].key >= entries[0].Key }):]
		}
		for i, j := 0, 0; i < len(entries) && j < len(old); {
			switch e, r := &entries[i], &old[j]; {
			case e.Key < r.key:
				i++
			case e.Key > r.key:
				j++
			default:
				if r.same(e) {
					e.Memo = r.memo // nil until a whole snapshot read the bytes twice
				}
				i, j = i+1, j+1
			}
		}
		return
	}
	n := int(min(int64(len(entries)), st.maxKept-(st.kept.Load()-int64(len(old)))))
	n = max(n, 0)
	if n == len(old) {
		// Most often the keys kept: one walk, in place. A key that differs sends the rest to
		// the walk below, which makes the refs anew from these.
		i := 0
		for ; i < n && old[i].key == entries[i].Key; i++ {
			old[i].attach(&entries[i])
		}
		if i == n {
			return
		}
	}
	refs := slices.Grow(c.spare[:0], n)[:n] // every ref is set below
	for i, j := 0, 0; i < n; i++ {
		e := &entries[i]
		for j < len(old) && old[j].key < e.Key {
			j++
		}
		if j < len(old) && old[j].key == e.Key {
			refs[i] = old[j]
		} else {
			refs[i] = memoRef{key: strings.Clone(e.Key)}
		}
		refs[i].attach(e)
	}
	clear(old) // what it held is copied or dropped
	c.refs, c.spare = refs, old[:0]
	st.kept.Add(int64(n - len(old)))
}

// attach sets e's memo when r holds e's bytes: r's memo, made by the second snapshot that
// reads them. Bytes read once are decoded once, as without a memo: a memo would add a clone
// to their decode. r keeps new bytes as a copy.
func (r *memoRef) attach(e *backend.Entry) {
	if !r.same(e) {
		// The bytes of a ref are never handed out: a new value may reuse them.
		r.value, r.version, r.memo = append(r.value[:0], e.Value...), e.Version, nil
		return
	}
	if r.memo == nil {
		r.memo = new(backend.Memo)
	}
	e.Memo = r.memo
}

// same reports whether r holds e's bytes, and records e's version when it does.
func (r *memoRef) same(e *backend.Entry) bool {
	if r.version == e.Version && len(r.value) == len(e.Value) {
		// The scripts never write two values of one version in an epoch; the length check
		// costs nothing and catches most entries another program rewrote keeping the version.
		return true
	}
	if bytes.Equal(r.value, e.Value) { // touched
		r.version = e.Version
		return true
	}
	return false
}
