package ephemeral

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
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
// Changes are reported, in order, to the callback given to [Store.Mirror] and to the channel of
// [WithChangeChan]: first every entry of the first snapshot as added, then one change per
// applied event. A relist reports the differences between the old and the new state in key
// order: keys that vanished as removed with [CauseRelist], new keys as added, and keys with a
// newer version as updated. The state is updated before its change is reported, and the mirror
// waits for each report: a slow consumer delays the mirror but never makes it drop a change or
// diverge. (If the delay outlasts the backend's event retention, the mirror relists and the
// changes it missed come as that relist's differences.)
//
// Keys are parsed once, when an entry or event arrives; an entry or event whose key does not
// parse as K (written by another program) is skipped and reported to [OnMirrorError] as an
// error wrapping [ErrInvalidKey].
//
// Get, Len and All may be called from any goroutine, also from the change callback.
//
//	m, err := store.Mirror(func(c ephemeral.Change[PresenceKey, Presence]) {
//		log.Printf("%s %s", c.Kind, c.Key.UserID)
//	}, ephemeral.WithTenant("room-1"))
//	if err != nil {
//		return err
//	}
//	defer m.Close()
//	if err := m.Ready(ctx); err != nil {
//		return err
//	}
//	for key, e := range m.All() {
//		fmt.Println(key.UserID, e.Value.Status)
//	}
type Mirror[K, T any] struct {
	store    *Store[K, T]
	tenant   string
	prefix   string
	onChange func(Change[K, T])
	onError  func(error)
	now      func() time.Time
	backoff  backoff
	changes  chan Change[K, T]

	cancel context.CancelFunc
	ready  chan struct{} // closed after the first snapshot is applied
	done   chan struct{} // closed when the mirror's goroutine has stopped

	mu      sync.RWMutex
	entries map[string]Entry[K, T] // by the string form of their keys
	keys    []string               // the keys of entries, sorted in byte order
	err     error                  // why the mirror stopped; set before done is closed
	retried error                  // the last error the mirror's goroutine retried after, for Ready

	// Owned by the mirror's goroutine.
	cursor backend.Cursor // the position of the state in the event stream
	floor  uint64         // the state holds every change of the cursor's epoch up to this version
	relist bool           // the next session starts with a snapshot
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
	if k != 0 && int(k) < len(changeKindNames) {
		return changeKindNames[k]
	}
	return "ChangeKind(" + strconv.Itoa(int(k)) + ")"
}

// RemoveCause says why a mirrored entry was removed. The zero RemoveCause is that of every
// change but ChangeRemoved.
type RemoveCause uint8

// The causes of a [ChangeRemoved].
const (
	CauseDelete RemoveCause = iota + 1 // a delete event: the key was removed
	CauseExpire                        // an expire event: the key reached its ExpiresAt
	CauseRelist                        // the key was missing from a new snapshot
)

var causeNames = [...]string{"", "delete", "expire", "relist"}

// String returns the cause's lower-case name, such as "expire", and "" for the zero cause of a
// change that is not a removal.
func (c RemoveCause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return "RemoveCause(" + strconv.Itoa(int(c)) + ")"
}

// Change is one change of a [Mirror]'s state.
type Change[K, T any] struct {
	Kind ChangeKind
	Key  K
	// Entry is the entry after the change; for ChangeRemoved, the last entry the mirror held.
	Entry  Entry[K, T]
	Cause  RemoveCause // ChangeRemoved only
	Reason string      // ChangeRemoved with CauseDelete: the reason given to Remove, if any
	// Version is the version of the event that made the change. For a change found by a relist
	// it is the new entry's version, or for ChangeRemoved the version of the snapshot.
	Version uint64
}

// MirrorOption configures a [Mirror]: [WithTenant], [WithPrefix], [OnMirrorError],
// [WithChangeChan], [WithBackoff], [WithMirrorClock].
type MirrorOption interface{ applyMirror(*mirrorOptions) }

type mirrorOptions struct {
	call       callOptions // tenant and prefix
	onError    func(error)
	buffer     int
	chanSet    bool
	now        func() time.Time
	backoff    backoff
	backoffSet bool
}

func (o TenantOption) applyMirror(c *mirrorOptions) { o.set(&c.call) }
func (o PrefixOption) applyMirror(c *mirrorOptions) { c.call.prefix = string(o) }

type mirrorOptionFunc func(*mirrorOptions)

func (f mirrorOptionFunc) applyMirror(c *mirrorOptions) { f(c) }

// OnMirrorError makes a mirror call fn, from its goroutine, with every error it recovers from:
// a value the codec cannot decode (an error wrapping [ErrDecode]; the entry or event is
// skipped and the mirror keeps what it held for the key) and a transport error of the backend
// (retried after a backoff). The error that stops a mirror is reported by [Mirror.Err] instead.
func OnMirrorError(fn func(error)) MirrorOption {
	return mirrorOptionFunc(func(c *mirrorOptions) { c.onError = fn })
}

// WithChangeChan makes a mirror send every change, in order, on the channel returned by
// [Mirror.Changes], which has the given buffer size. Sends block: a consumer that falls behind
// holds the mirror back as a slow change callback does, and no change is dropped. The
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
// When onChange is not nil the mirror calls it with every change, in order, from the mirror's
// goroutine. The mirror's state already holds the change when onChange is called. While it runs
// the mirror does not advance: a slow onChange delays the mirror but loses nothing (if it falls
// behind the backend's retained history, the mirror relists and reports the differences).
// onChange must not call the mirror's Close.
//
// The backend's expire events are authoritative: an entry leaves the mirror when its expire
// event arrives. Until then, Get, Len and All hide an entry whose ExpiresAt has passed by the
// local clock, so that a late event never shows an expired entry. A quiet touch (see [Quiet])
// makes no event, so a mirror does not see the later expiry it sets: an entry kept alive only
// by quiet touches is hidden from its last known ExpiresAt until the next relist.
//
// Mirror fails with an error wrapping [ErrInvalidTenant] or [ErrInvalidConfig] when an option
// is invalid.
func (s *Store[K, T]) Mirror(onChange func(Change[K, T]), opts ...MirrorOption) (*Mirror[K, T], error) {
	var o mirrorOptions
	for _, opt := range opts {
		opt.applyMirror(&o)
	}
	tenant, err := s.tenantOf(&o.call)
	if err != nil {
		return nil, err
	}
	m := &Mirror[K, T]{
		store:    s,
		tenant:   tenant,
		prefix:   o.call.prefix,
		onChange: onChange,
		onError:  o.onError,
		now:      o.now,
		backoff:  defaultBackoff,
		ready:    make(chan struct{}),
		done:     make(chan struct{}),
		entries:  map[string]Entry[K, T]{},
		relist:   true,
	}
	if o.chanSet {
		if o.buffer < 0 {
			return nil, fmt.Errorf("%w: negative change channel buffer %d", ErrInvalidConfig, o.buffer)
		}
		m.changes = make(chan Change[K, T], o.buffer)
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

// Ready blocks until the mirror holds its first snapshot (nil), ctx is done, or the mirror
// stopped before its first snapshot (the error of [Mirror.Err]). When ctx is done first, the
// error wraps ctx.Err() and, when the mirror was retrying (a backend it cannot reach), the
// last error it retried after, which [OnMirrorError] was given too.
func (m *Mirror[K, T]) Ready(ctx context.Context) error {
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
		select {
		case <-m.ready: // both at once
			return nil
		default:
		}
		m.mu.RLock()
		retried := m.retried
		m.mu.RUnlock()
		if retried != nil {
			return fmt.Errorf("%w before the mirror's first snapshot; its last error: %w", ctx.Err(), retried)
		}
		return ctx.Err()
	}
}

// Get returns the entry the mirror holds for key; ok is false when it holds none or the entry's
// ExpiresAt has passed by the mirror's clock.
func (m *Mirror[K, T]) Get(key K) (e Entry[K, T], ok bool) {
	k := m.store.key.Format(key)
	m.mu.RLock()
	e, ok = m.entries[k]
	m.mu.RUnlock()
	if !ok || !m.now().Before(e.ExpiresAt) {
		return Entry[K, T]{}, false
	}
	e.Value = m.store.copied(&e.Value)
	return e, true
}

// Len returns the number of entries All would yield now.
func (m *Mirror[K, T]) Len() int {
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

// All returns an iterator over the mirror's entries, sorted by the string form of their keys in
// byte order, hiding those whose ExpiresAt has passed. It yields the state of one instant, taken
// when the iteration starts; changes applied meanwhile are not seen.
func (m *Mirror[K, T]) All() iter.Seq2[K, Entry[K, T]] {
	return func(yield func(K, Entry[K, T]) bool) {
		for _, e := range m.list() {
			if !yield(e.Key, e) {
				return
			}
		}
	}
}

// list returns the live entries, sorted by key.
func (m *Mirror[K, T]) list() []Entry[K, T] {
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Entry[K, T], 0, len(m.keys))
	for _, k := range m.keys {
		if e := m.entries[k]; now.Before(e.ExpiresAt) {
			e.Value = m.store.copied(&e.Value)
			out = append(out, e)
		}
	}
	return out
}

// Changes returns the channel of [WithChangeChan], or nil when the mirror was made without it.
// It is closed when the mirror stops.
func (m *Mirror[K, T]) Changes() <-chan Change[K, T] { return m.changes }

// Done returns a channel that is closed when the mirror has stopped, after Close or on a
// terminal error (see [Mirror.Err]).
func (m *Mirror[K, T]) Done() <-chan struct{} { return m.done }

// Err returns nil while the mirror runs (also while it retries after transport errors), and
// after it stopped the reason: an error wrapping [ErrClosed], either because Close was called
// or because the backend was closed.
func (m *Mirror[K, T]) Err() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.err
}

// Close stops the mirror and waits for its goroutine to end, which includes waiting for a
// running change callback to return; its state stays readable. Close is idempotent. It must
// not be called from the change callback.
func (m *Mirror[K, T]) Close() {
	m.cancel()
	<-m.done
}

// run is the mirror's goroutine: it runs sessions until the mirror is closed or the backend is.
func (m *Mirror[K, T]) run(ctx context.Context) {
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
		err = fmt.Errorf("ephemeral: mirror of %q/%q: %w", m.store.id, m.tenant, err)
		m.mu.Lock()
		m.retried = err
		m.mu.Unlock()
		m.reportError(err)
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

func (m *Mirror[K, T]) stop(err error) {
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
}

// session takes a snapshot if one is due, then applies the events after the mirror's cursor.
// It returns a nil error when a relist is due, and whether it got as far as subscribing.
func (m *Mirror[K, T]) session(ctx context.Context) (subscribed bool, err error) {
	if m.relist {
		if err := m.resync(ctx); err != nil {
			return false, err
		}
	}
	after := m.cursor
	sub, err := m.store.b.Subscribe(ctx, m.tenant, backend.SubscribeRequest{After: &after, Prefix: m.prefix})
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
		if raw.Kind == EventOverflow || raw.Epoch != m.cursor.Epoch {
			m.relist = true
			return true, nil
		}
		m.cursor = raw.Cursor()
		c, ok := m.apply(raw)
		m.floor = max(m.floor, raw.Version)
		if ok {
			m.notify(ctx, c)
		}
	}
}

// resync takes a snapshot, replaces the state with it and reports the differences.
func (m *Mirror[K, T]) resync(ctx context.Context) error {
	raw, err := m.store.b.Snapshot(ctx, m.tenant, m.prefix)
	if err != nil {
		return err
	}
	entries := make([]keyed[K, T], 0, len(raw.Entries))
	floor := raw.Cursor.Seq
	for i := range raw.Entries {
		e, err := m.store.decodeEntry(&raw.Entries[i])
		if err != nil {
			m.reportError(err)
			continue
		}
		entries = append(entries, keyed[K, T]{raw.Entries[i].Key, e})
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

// keyed is an entry with the string form of its key.
type keyed[K, T any] struct {
	key string
	e   Entry[K, T]
}

// replace makes entries, sorted by key, the mirror's state and returns the changes from the
// previous state in key order. Removals get the version seq.
func (m *Mirror[K, T]) replace(entries []keyed[K, T], seq uint64) []Change[K, T] {
	m.mu.Lock()
	defer m.mu.Unlock()
	var changes []Change[K, T]
	removed := func(key string) {
		old := m.entries[key]
		changes = append(changes, Change[K, T]{Kind: ChangeRemoved, Key: old.Key, Entry: old, Cause: CauseRelist, Version: seq})
	}
	state := make(map[string]Entry[K, T], len(entries))
	keys := make([]string, 0, len(entries))
	i := 0 // the next of the old keys
	for _, ke := range entries {
		k, e := ke.key, ke.e
		for ; i < len(m.keys) && m.keys[i] < k; i++ {
			removed(m.keys[i])
		}
		switch old, held := m.entries[k]; {
		case !held:
			changes = append(changes, Change[K, T]{Kind: ChangeAdded, Key: e.Key, Entry: e, Version: e.Version})
		case old.Epoch != e.Epoch || old.Version != e.Version || !old.UpdatedAt.Equal(e.UpdatedAt):
			changes = append(changes, Change[K, T]{Kind: ChangeUpdated, Key: e.Key, Entry: e, Version: e.Version})
		}
		if i < len(m.keys) && m.keys[i] == k {
			i++
		}
		state[k] = e
		keys = append(keys, k)
	}
	for ; i < len(m.keys); i++ {
		removed(m.keys[i])
	}
	m.entries, m.keys = state, keys
	return changes
}

// apply applies one event to the state if it is newer than what the state holds for its key,
// and returns the change it made.
func (m *Mirror[K, T]) apply(raw *backend.Event) (Change[K, T], bool) {
	if raw.Version <= m.floor {
		return Change[K, T]{}, false // replayed: the state holds this change already
	}
	var e Entry[K, T]
	if raw.Kind == EventUpsert {
		// The event's value is decoded once for every reader and mirror of the store; the
		// mirror keeps a copy of its own.
		d := m.store.decoded(raw)
		err := d.err
		if err == nil {
			re := raw.Entry()
			e.Key = d.ev.Key
			setMeta(&e, &re)
			err = m.store.copyValue(&e.Value, &d.ev.Value, raw)
		}
		if err != nil {
			m.reportError(err)
			return Change[K, T]{}, false
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old, held := m.entries[raw.Key]
	if held && old.Version >= raw.Version {
		return Change[K, T]{}, false
	}
	c := Change[K, T]{Key: old.Key, Version: raw.Version}
	switch raw.Kind {
	case EventUpsert:
		c.Kind, c.Key, c.Entry = ChangeUpdated, e.Key, e
		if !held {
			c.Kind = ChangeAdded
			m.insertKey(raw.Key)
		}
		m.entries[raw.Key] = e
	case EventTouch:
		if !held {
			return Change[K, T]{}, false // the mirror has no value for the key
		}
		old.Version, old.UpdatedAt, old.ExpiresAt = raw.Version, msTime(raw.At), msTime(raw.ExpiresAt)
		c.Kind, c.Entry = ChangeTouched, old
		m.entries[raw.Key] = old
	case EventDelete, EventExpire:
		if !held {
			return Change[K, T]{}, false
		}
		c.Kind, c.Entry, c.Cause = ChangeRemoved, old, CauseExpire
		if raw.Kind == EventDelete {
			c.Cause, c.Reason = CauseDelete, raw.Reason
		}
		delete(m.entries, raw.Key)
		m.deleteKey(raw.Key)
	default:
		return Change[K, T]{}, false
	}
	return c, true
}

func (m *Mirror[K, T]) insertKey(key string) {
	if i, found := slices.BinarySearch(m.keys, key); !found {
		m.keys = slices.Insert(m.keys, i, key)
	}
}

func (m *Mirror[K, T]) deleteKey(key string) {
	if i, found := slices.BinarySearch(m.keys, key); found {
		m.keys = slices.Delete(m.keys, i, i+1)
	}
}

// notify reports c to the callback and the channel, each with its own copy of the value; a
// pending send ends when ctx is done.
func (m *Mirror[K, T]) notify(ctx context.Context, c Change[K, T]) {
	if m.onChange != nil {
		cc := c
		cc.Entry.Value = m.store.copied(&c.Entry.Value)
		m.onChange(cc)
	}
	if m.changes != nil {
		c.Entry.Value = m.store.copied(&c.Entry.Value)
		select {
		case m.changes <- c:
		case <-ctx.Done():
		}
	}
}

func (m *Mirror[K, T]) reportError(err error) {
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
