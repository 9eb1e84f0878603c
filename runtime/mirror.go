package runtime

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Mirror is an in-process, read-only replica of one tenant of a store, or of the keys with a
// prefix in it, from [Store.Mirror]. It is the informer of client-go for ephemeral state: it
// takes a snapshot, then follows the event stream after the snapshot's cursor, and takes a new
// snapshot ("relists") when the stream reports an overflow or the backend lost its state.
//
// Events are applied only when their version is newer than the one the mirror holds for the
// key and than every change the mirror's state already holds (a snapshot holds those up to its
// cursor and its newest entry), so replayed or overlapping events never overwrite newer state
// nor bring back removed keys. Transport errors are retried with exponential backoff and
// jitter; values the codec cannot decode are skipped and reported to [OnMirrorError].
//
// Changes are reported, in order, to [OnChange] and to the channel of [WithChangeChan]: first
// every entry of the first snapshot as added, then one change per applied event. A relist
// reports the differences between the old and the new state in key order: keys that vanished
// as removed with [CauseRelist], new keys as added, and keys with a newer version as updated.
// The state is updated before its change is reported, and the mirror waits for each report:
// a slow consumer delays the mirror but never makes it drop a change or diverge. (If the delay
// outlasts the backend's event retention, the mirror relists and the changes it missed come as
// that relist's differences.)
//
// Get, Len and All may be called from any goroutine, also from the change callback.
//
//	m, err := store.Mirror(runtime.WithTenant("room-1"),
//		runtime.OnChange(func(c runtime.Change[Presence]) {
//			log.Printf("%s %s", c.Kind, c.Key)
//		}))
//	if err != nil {
//		return err
//	}
//	defer m.Close()
//	if err := m.Ready(ctx); err != nil {
//		return err
//	}
//	for key, e := range m.All() {
//		fmt.Println(key, e.Value.Status)
//	}
type Mirror[T any] struct {
	store    *Store[T]
	scope    Scope
	prefix   string
	onChange func(Change[T])
	onError  func(error)
	now      func() time.Time
	backoff  backoff
	changes  chan Change[T]

	cancel context.CancelFunc
	ready  chan struct{} // closed after the first snapshot is applied
	done   chan struct{} // closed when the mirror's goroutine has stopped

	mu      sync.RWMutex
	entries map[string]Entry[T]
	keys    []string // the keys of entries, sorted in byte order
	err     error    // why the mirror stopped; set before done is closed

	// Owned by the mirror's goroutine.
	cursor Cursor // the position of the state in the event stream
	floor  uint64 // the state holds every change of the cursor's epoch up to this version
	relist bool   // the next session starts with a snapshot
}

// ChangeKind says how a mirrored entry changed.
type ChangeKind uint8

// The kinds of [Change].
const (
	ChangeAdded   ChangeKind = iota + 1 // a key appeared
	ChangeUpdated                       // a key's entry was replaced by a newer version
	ChangeTouched                       // a key's TTL was extended; its value is unchanged
	ChangeRemoved                       // a key is gone; Change.Cause says why
)

var changeKindNames = [...]string{"", "added", "updated", "touched", "removed"}

// String returns the kind's lower-case name, such as "added".
func (k ChangeKind) String() string {
	if int(k) < len(changeKindNames) && k != 0 {
		return changeKindNames[k]
	}
	return "ChangeKind(" + itoa(uint64(k)) + ")"
}

// RemoveCause says why a mirrored entry was removed.
type RemoveCause uint8

// The causes of a [ChangeRemoved].
const (
	CauseDelete RemoveCause = iota + 1 // a delete event: the key was removed
	CauseExpire                        // an expire event: the key reached its ExpiresAt
	CauseRelist                        // the key was missing from a new snapshot
)

var causeNames = [...]string{"", "delete", "expire", "relist"}

// String returns the cause's lower-case name, such as "expire".
func (c RemoveCause) String() string {
	if int(c) < len(causeNames) && c != 0 {
		return causeNames[c]
	}
	return "RemoveCause(" + itoa(uint64(c)) + ")"
}

// Change is one change of a [Mirror]'s state.
type Change[T any] struct {
	Kind ChangeKind
	Key  string
	// Entry is the entry after the change; for ChangeRemoved, the last entry the mirror held.
	Entry  Entry[T]
	Cause  RemoveCause // ChangeRemoved only
	Reason string      // ChangeRemoved with CauseDelete: the reason given to Remove, if any
	// Version is the version of the event that made the change. For a change found by a relist
	// it is the new entry's version, or for ChangeRemoved the version of the snapshot.
	Version uint64
}

// MirrorOption configures a [Mirror]: [WithTenant], [WithPrefix], [OnChange],
// [OnMirrorError], [WithChangeChan], [WithBackoff], [WithMirrorClock].
type MirrorOption interface{ applyMirror(*mirrorOptions) }

type mirrorOptions struct {
	tenant     string
	prefix     string
	onChange   any // func(Change[T]), or func(Change[T]) error whose errors go to onError
	onError    func(error)
	buffer     int
	chanSet    bool
	now        func() time.Time
	backoff    backoff
	backoffSet bool
}

func (o TenantOption) applyMirror(c *mirrorOptions) { c.tenant = string(o) }
func (o PrefixOption) applyMirror(c *mirrorOptions) { c.prefix = string(o) }

type mirrorOptionFunc func(*mirrorOptions)

func (f mirrorOptionFunc) applyMirror(c *mirrorOptions) { f(c) }

// changeFunc is the option of [OnChange].
type changeFunc[T any] func(Change[T])

func (f changeFunc[T]) applyMirror(c *mirrorOptions) { c.onChange = (func(Change[T]))(f) }

// OnChange makes a mirror call fn with every change, in order, from the mirror's goroutine. The
// mirror's state already holds the change when fn is called. While fn runs the mirror does not
// advance: a slow fn delays the mirror but loses nothing (if it falls behind the backend's
// retained history, the mirror relists and reports the differences). fn must not call the
// mirror's Close. T must be the mirror's value type.
func OnChange[T any](fn func(Change[T])) MirrorOption { return changeFunc[T](fn) }

// OnMirrorError makes a mirror call fn, from its goroutine, with every error it recovers from:
// a value the codec cannot decode (an error wrapping [ErrDecode]; the entry or event is
// skipped and the mirror keeps what it held for the key) and a transport error of the backend
// (retried after a backoff). The error that stops a mirror is reported by [Mirror.Err] instead.
func OnMirrorError(fn func(error)) MirrorOption {
	return mirrorOptionFunc(func(c *mirrorOptions) { c.onError = fn })
}

// WithChangeChan makes a mirror send every change, in order, on the channel returned by
// [Mirror.Changes], which has the given buffer size. Sends block: a consumer that falls behind
// holds the mirror back as a slow [OnChange] callback does, and no change is dropped. The
// channel is closed when the mirror stops; changes not yet sent when Close is called are
// dropped.
func WithChangeChan(buffer int) MirrorOption {
	return mirrorOptionFunc(func(c *mirrorOptions) { c.buffer, c.chanSet = buffer, true })
}

// WithBackoff sets the delays between a mirror's retries after transport errors: the first
// retry waits about initial, each further one twice as long, up to limit; each delay is drawn at
// random between half and all of that ("equal jitter"). The default is 50 ms to 5 s.
func WithBackoff(initial, limit time.Duration) MirrorOption {
	return mirrorOptionFunc(func(c *mirrorOptions) {
		c.backoff, c.backoffSet = backoff{initial: initial, limit: limit}, true
	})
}

// WithMirrorClock sets the clock a mirror uses to hide entries past their ExpiresAt (default
// time.Now); for tests.
func WithMirrorClock(now func() time.Time) MirrorOption {
	return mirrorOptionFunc(func(c *mirrorOptions) { c.now = now })
}

var defaultBackoff = backoff{initial: 50 * time.Millisecond, limit: 5 * time.Second}

// Mirror starts a mirror of the store's default tenant (another with [WithTenant]), or of the
// keys with a prefix in it ([WithPrefix]). It returns at once; [Mirror.Ready] waits for the
// first snapshot. Close the mirror when done.
//
// The backend's expire events are authoritative: an entry leaves the mirror when its expire
// event arrives. Until then, Get, Len and All hide an entry whose ExpiresAt has passed by the
// local clock, so that a late event never shows an expired entry. A quiet touch (see [Quiet])
// makes no event, so a mirror does not see the later expiry it sets: an entry kept alive only
// by quiet touches is hidden from its last known ExpiresAt until the next relist.
//
// Mirror fails with an error wrapping [ErrInvalidTenant] or [ErrInvalidConfig] when an option
// is invalid.
func (s *Store[T]) Mirror(opts ...MirrorOption) (*Mirror[T], error) {
	var o mirrorOptions
	for _, opt := range opts {
		opt.applyMirror(&o)
	}
	sc, err := s.scopeFor(o.tenant)
	if err != nil {
		return nil, err
	}
	m := &Mirror[T]{
		store:   s,
		scope:   sc,
		prefix:  o.prefix,
		onError: o.onError,
		now:     o.now,
		backoff: defaultBackoff,
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
		entries: map[string]Entry[T]{},
		relist:  true,
	}
	switch fn := o.onChange.(type) {
	case nil:
	case func(Change[T]):
		m.onChange = fn
	case func(Change[T]) error: // a callback that can refuse a change, as OnKeyedChange's
		m.onChange = func(c Change[T]) {
			if err := fn(c); err != nil {
				m.reportError(err)
			}
		}
	default:
		return nil, fmt.Errorf("%w: OnChange callback of type %T for a mirror of %T values", ErrInvalidConfig, o.onChange, *new(T))
	}
	if o.chanSet {
		if o.buffer < 0 {
			return nil, fmt.Errorf("%w: negative change channel buffer %d", ErrInvalidConfig, o.buffer)
		}
		m.changes = make(chan Change[T], o.buffer)
	}
	if o.backoffSet {
		if o.backoff.initial <= 0 || o.backoff.limit < o.backoff.initial {
			return nil, fmt.Errorf("%w: backoff from %v to %v", ErrInvalidConfig, o.backoff.initial, o.backoff.limit)
		}
		m.backoff = o.backoff
	}
	if m.now == nil {
		m.now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go m.run(ctx)
	return m, nil
}

// Ready blocks until the mirror holds its first snapshot (nil), ctx is done (ctx.Err()), or the
// mirror stopped before its first snapshot (the error of [Mirror.Err]).
func (m *Mirror[T]) Ready(ctx context.Context) error {
	select {
	case <-m.ready:
		return nil
	case <-m.done:
		select {
		case <-m.ready:
			return nil
		default:
			return m.Err()
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Get returns the entry the mirror holds for key; ok is false when it holds none or the entry's
// ExpiresAt has passed by the mirror's clock.
func (m *Mirror[T]) Get(key string) (e Entry[T], ok bool) {
	m.mu.RLock()
	e, ok = m.entries[key]
	m.mu.RUnlock()
	if !ok || !m.now().Before(e.ExpiresAt) {
		return Entry[T]{}, false
	}
	return e, true
}

// Len returns the number of entries All would yield now.
func (m *Mirror[T]) Len() int {
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := 0
	for _, e := range m.entries {
		if now.Before(e.ExpiresAt) {
			n++
		}
	}
	return n
}

// All returns an iterator over the mirror's entries, sorted by key in byte order, hiding those
// whose ExpiresAt has passed. It yields the state of one instant, taken when the iteration
// starts; changes applied meanwhile are not seen.
func (m *Mirror[T]) All() iter.Seq2[string, Entry[T]] {
	return func(yield func(string, Entry[T]) bool) {
		for _, e := range m.list() {
			if !yield(e.Key, e) {
				return
			}
		}
	}
}

// list returns the live entries, sorted by key.
func (m *Mirror[T]) list() []Entry[T] {
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Entry[T], 0, len(m.keys))
	for _, k := range m.keys {
		if e := m.entries[k]; now.Before(e.ExpiresAt) {
			out = append(out, e)
		}
	}
	return out
}

// Changes returns the channel of [WithChangeChan], or nil when the mirror was made without it.
// It is closed when the mirror stops.
func (m *Mirror[T]) Changes() <-chan Change[T] { return m.changes }

// Done returns a channel that is closed when the mirror has stopped, after Close or on a
// terminal error (see [Mirror.Err]).
func (m *Mirror[T]) Done() <-chan struct{} { return m.done }

// Err returns nil while the mirror runs (also while it retries after transport errors), and
// after it stopped the reason: an error wrapping [ErrClosed], either because Close was called
// or because the backend was closed.
func (m *Mirror[T]) Err() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.err
}

// Close stops the mirror and waits for its goroutine to end, which includes waiting for a
// running [OnChange] callback to return; its state stays readable. Close is idempotent. It must
// not be called from the OnChange callback.
func (m *Mirror[T]) Close() {
	m.cancel()
	<-m.done
}

// run is the mirror's goroutine: it runs sessions until the mirror is closed or the backend is.
func (m *Mirror[T]) run(ctx context.Context) {
	defer close(m.done)
	if m.changes != nil {
		defer close(m.changes)
	}
	failures := 0
	for {
		subscribed, err := m.session(ctx)
		switch {
		case ctx.Err() != nil:
			m.stop(ErrClosed)
			return
		case errors.Is(err, ErrClosed):
			m.stop(fmt.Errorf("ephemeral: mirror stopped: %w", err))
			return
		case err == nil: // relist requested
			failures = 0
			continue
		}
		m.reportError(fmt.Errorf("ephemeral: mirror of %q/%q: %w", m.scope.ID, m.scope.Tenant, err))
		if subscribed { // the connection worked: start the backoff anew
			failures = 0
		}
		failures++
		if !sleep(ctx, m.backoff.delay(failures)) {
			m.stop(ErrClosed)
			return
		}
	}
}

func (m *Mirror[T]) stop(err error) {
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
}

// session takes a snapshot if one is due, then applies the events after the mirror's cursor.
// It returns a nil error when a relist is due, and whether it got as far as subscribing.
func (m *Mirror[T]) session(ctx context.Context) (subscribed bool, err error) {
	if m.relist {
		if err := m.resync(ctx); err != nil {
			return false, err
		}
	}
	after := m.cursor
	sub, err := m.store.backend.Subscribe(ctx, m.scope, SubscribeRequest{After: &after, Prefix: m.prefix})
	if err != nil {
		// A cursor the backend does not know (a failover lost the last writes of the epoch)
		// needs a new snapshot; the error is still reported and retried after a backoff.
		m.relist = m.relist || errors.Is(err, ErrInvalidCursor)
		return false, err
	}
	defer sub.Close()
	for {
		raw, err := sub.Next(ctx)
		if err != nil {
			return true, err
		}
		if raw.Kind == EventOverflow || raw.Cursor.Epoch != m.cursor.Epoch {
			m.relist = true
			return true, nil
		}
		m.cursor = raw.Cursor
		c, ok := m.apply(&raw)
		m.floor = max(m.floor, raw.Version)
		if ok {
			m.notify(ctx, c)
		}
	}
}

// resync takes a snapshot, replaces the state with it and reports the differences.
func (m *Mirror[T]) resync(ctx context.Context) error {
	raw, err := m.store.backend.Snapshot(ctx, m.scope, m.prefix)
	if err != nil {
		return err
	}
	entries := make([]Entry[T], 0, len(raw.Entries))
	floor := raw.Cursor.Seq
	for i := range raw.Entries {
		e, err := m.store.decodeEntry(&raw.Entries[i])
		if err != nil {
			m.reportError(err)
			continue
		}
		entries = append(entries, e)
		floor = max(floor, e.Version)
	}
	changes := m.replace(entries, raw.Cursor.Seq)
	m.cursor, m.floor, m.relist = raw.Cursor, floor, false
	select {
	case <-m.ready:
	default:
		close(m.ready)
	}
	for _, c := range changes {
		m.notify(ctx, c)
	}
	return nil
}

// replace makes entries, sorted by key, the mirror's state and returns the changes from the
// previous state in key order. Removals get the version seq.
func (m *Mirror[T]) replace(entries []Entry[T], seq uint64) []Change[T] {
	m.mu.Lock()
	defer m.mu.Unlock()
	var changes []Change[T]
	removed := func(key string) {
		changes = append(changes, Change[T]{Kind: ChangeRemoved, Key: key, Entry: m.entries[key], Cause: CauseRelist, Version: seq})
	}
	state := make(map[string]Entry[T], len(entries))
	keys := make([]string, 0, len(entries))
	i := 0 // the next of the old keys
	for _, e := range entries {
		for ; i < len(m.keys) && m.keys[i] < e.Key; i++ {
			removed(m.keys[i])
		}
		switch old, held := m.entries[e.Key]; {
		case !held:
			changes = append(changes, Change[T]{Kind: ChangeAdded, Key: e.Key, Entry: e, Version: e.Version})
		case old.Version != e.Version || !old.UpdatedAt.Equal(e.UpdatedAt):
			changes = append(changes, Change[T]{Kind: ChangeUpdated, Key: e.Key, Entry: e, Version: e.Version})
		}
		if i < len(m.keys) && m.keys[i] == e.Key {
			i++
		}
		state[e.Key] = e
		keys = append(keys, e.Key)
	}
	for ; i < len(m.keys); i++ {
		removed(m.keys[i])
	}
	m.entries, m.keys = state, keys
	return changes
}

// apply applies one event to the state if it is newer than what the state holds for its key,
// and returns the change it made.
func (m *Mirror[T]) apply(raw *RawEvent) (Change[T], bool) {
	if raw.Version <= m.floor {
		return Change[T]{}, false // replayed: the state holds this change already
	}
	var e Entry[T]
	if raw.Kind == EventUpsert {
		var err error
		if e, err = m.store.decodeEntry(&raw.Entry); err != nil {
			m.reportError(err)
			return Change[T]{}, false
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old, held := m.entries[raw.Key]
	if held && old.Version >= raw.Version {
		return Change[T]{}, false
	}
	c := Change[T]{Key: raw.Key, Version: raw.Version}
	switch raw.Kind {
	case EventUpsert:
		c.Kind, c.Entry = ChangeUpdated, e
		if !held {
			c.Kind = ChangeAdded
			m.insertKey(raw.Key)
		}
		m.entries[raw.Key] = e
	case EventTouch:
		if !held {
			return Change[T]{}, false // the mirror has no value for the key
		}
		old.Version, old.UpdatedAt, old.ExpiresAt = raw.Version, raw.At, raw.ExpiresAt
		c.Kind, c.Entry = ChangeTouched, old
		m.entries[raw.Key] = old
	case EventDelete, EventExpire:
		if !held {
			return Change[T]{}, false
		}
		c.Kind, c.Entry, c.Cause, c.Reason = ChangeRemoved, old, CauseExpire, ""
		if raw.Kind == EventDelete {
			c.Cause, c.Reason = CauseDelete, raw.Reason
		}
		delete(m.entries, raw.Key)
		m.deleteKey(raw.Key)
	default:
		return Change[T]{}, false
	}
	return c, true
}

func (m *Mirror[T]) insertKey(key string) {
	if i, found := slices.BinarySearch(m.keys, key); !found {
		m.keys = slices.Insert(m.keys, i, key)
	}
}

func (m *Mirror[T]) deleteKey(key string) {
	if i, found := slices.BinarySearch(m.keys, key); found {
		m.keys = slices.Delete(m.keys, i, i+1)
	}
}

// notify reports c to the callback and the channel; a pending send ends when ctx is done.
func (m *Mirror[T]) notify(ctx context.Context, c Change[T]) {
	if m.onChange != nil {
		m.onChange(c)
	}
	if m.changes != nil {
		select {
		case m.changes <- c:
		case <-ctx.Done():
		}
	}
}

func (m *Mirror[T]) reportError(err error) {
	if m.onError != nil {
		m.onError(err)
	}
}

// backoff computes the delays between retries.
type backoff struct{ initial, limit time.Duration }

// delay returns the delay before retry number n (from 1): initial doubled n-1 times, at most
// limit, with equal jitter.
func (b backoff) delay(n int) time.Duration {
	d := b.initial
	for i := 1; i < n && d < b.limit; i++ {
		d = min(2*d, b.limit)
		if d <= 0 { // overflow
			d = b.limit
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits for d, and reports false if ctx is done first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// KeyedMirror is a [Mirror] whose keys are typed K, as the stores ephemeralgen generates
// address them. It reads the same state: Get formats its key, All parses the keys it yields.
// A key that K cannot represent (written by a foreign client) is skipped by All and Len; the
// untyped mirror of [KeyedMirror.Mirror] still holds it.
type KeyedMirror[K, T any] struct {
	m      *Mirror[T]
	format func(K) string
	parse  func(string) (K, error)
}

// NewKeyedMirror returns the typed view of m: format returns the string form of a key, parse
// reads it back.
func NewKeyedMirror[K, T any](m *Mirror[T], format func(K) string, parse func(string) (K, error)) *KeyedMirror[K, T] {
	return &KeyedMirror[K, T]{m: m, format: format, parse: parse}
}

// Mirror returns the untyped mirror under km, with string keys, its change channel and Err.
func (km *KeyedMirror[K, T]) Mirror() *Mirror[T] { return km.m }

// Ready waits for the first snapshot; see [Mirror.Ready].
func (km *KeyedMirror[K, T]) Ready(ctx context.Context) error { return km.m.Ready(ctx) }

// Get returns the entry the mirror holds for key; see [Mirror.Get].
func (km *KeyedMirror[K, T]) Get(key K) (KeyedEntry[K, T], bool) {
	e, ok := km.m.Get(km.format(key))
	if !ok {
		return KeyedEntry[K, T]{}, false
	}
	return KeyEntry(key, e), true
}

// All returns an iterator over the mirror's entries whose keys parse, sorted by the string form
// of their keys; see [Mirror.All].
func (km *KeyedMirror[K, T]) All() iter.Seq2[K, KeyedEntry[K, T]] {
	return func(yield func(K, KeyedEntry[K, T]) bool) {
		for _, e := range km.m.list() {
			k, err := km.parse(e.Key)
			if err != nil {
				continue
			}
			if !yield(k, KeyEntry(k, e)) {
				return
			}
		}
	}
}

// Len returns the number of entries All would yield now.
func (km *KeyedMirror[K, T]) Len() int {
	n := 0
	for range km.All() {
		n++
	}
	return n
}

// Close stops the mirror; see [Mirror.Close].
func (km *KeyedMirror[K, T]) Close() { km.m.Close() }

// KeyedChange is a [Change] whose key is parsed into K.
type KeyedChange[K, T any] struct {
	Kind    ChangeKind
	Key     K
	Entry   KeyedEntry[K, T]
	Cause   RemoveCause
	Reason  string
	Version uint64
}

// ParseChange returns c with its key parsed by parse, for the change callbacks of typed stores.
// A key parse cannot read is an error wrapping [ErrInvalidKey].
func ParseChange[K, T any](c Change[T], parse func(string) (K, error)) (KeyedChange[K, T], error) {
	k, err := parseKey(c.Key, parse)
	if err != nil {
		return KeyedChange[K, T]{}, err
	}
	return KeyedChange[K, T]{Kind: c.Kind, Key: k, Entry: KeyEntry(k, c.Entry), Cause: c.Cause, Reason: c.Reason, Version: c.Version}, nil
}
