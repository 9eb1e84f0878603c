package backend

import "sync/atomic"

// Memo is a slot for one value derived from an event or from an entry's value (see
// Event.Memo and Entry.Memo), such as its value decoded by the typed API, computed by the
// first reader that needs it and shared by the others. The first Store for a key wins. A nil
// *Memo holds nothing and stores nothing.
type Memo struct {
	p atomic.Pointer[memoValue]
}

type memoValue struct{ key, val any }

// Load returns the value stored for key, or nil.
func (m *Memo) Load(key any) any {
	if m == nil {
		return nil
	}
	if mv := m.p.Load(); mv != nil && mv.key == key {
		return mv.val
	}
	return nil
}

// Store stores val for key unless the memo holds a value already, and returns the value
// the memo holds for key: val, the value another reader stored first, or nil when the memo
// holds a value for another key (or m is nil).
func (m *Memo) Store(key, val any) any {
	if m == nil {
		return nil
	}
	if m.p.CompareAndSwap(nil, &memoValue{key, val}) {
		return val
	}
	return m.Load(key)
}
