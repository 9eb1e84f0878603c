package backend

import "sync/atomic"

// Memo is a slot that a backend keeps beside a stored value, in which the typed layer keeps
// the value's decoded form, so that reads of a value that has not changed since skip the
// decode. The backend only makes room for it and hands out a [MemoRef] with each entry; it
// never looks inside. The zero Memo is empty and ready to use; it is safe for concurrent use.
//
// runtime/memstore keeps one in every entry. A backend that returns fresh bytes on every read
// (runtime/redisstore) has nothing to keep it in and leaves Entry.Memo zero.
type Memo struct {
	p atomic.Pointer[memoItem]
}

type memoItem struct {
	tag uint64
	v   any
}

// MemoRef refers to a [Memo] for one version of the value beside it. A Memo outlives the
// versions of its value; the tag, which the backend changes whenever the value changes, makes
// sure that what was kept for one version is never returned for another. The zero MemoRef
// refers to no Memo: Load returns nil and Store does nothing.
type MemoRef struct {
	m   *Memo
	tag uint64
}

// NewMemoRef returns the reference to m for the value version tag. A backend gives every
// value it stores in m a tag of its own, such as the version of the upsert that wrote it.
func NewMemoRef(m *Memo, tag uint64) MemoRef { return MemoRef{m: m, tag: tag} }

// IsZero reports whether r refers to no Memo.
func (r MemoRef) IsZero() bool { return r.m == nil }

// Load returns what Store kept for this value version, or nil.
func (r MemoRef) Load() any {
	if r.m == nil {
		return nil
	}
	if it := r.m.p.Load(); it != nil && it.tag == r.tag {
		return it.v
	}
	return nil
}

// Store keeps v for this value version, replacing whatever the Memo held. Every reader of the
// version may get v: it must not be modified afterwards.
func (r MemoRef) Store(v any) {
	if r.m != nil {
		r.m.p.Store(&memoItem{tag: r.tag, v: v})
	}
}

// Clear empties m, releasing what it held. A backend may call it when the value changes.
func (m *Memo) Clear() {
	if m.p.Load() != nil {
		m.p.Store(nil)
	}
}

// Equal reports whether r and o refer to the same Memo for the same value version. (It also
// lets github.com/google/go-cmp compare entries.)
func (r MemoRef) Equal(o MemoRef) bool { return r == o }
