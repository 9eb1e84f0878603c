package lock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// waitFor bounds every wait for something that should happen promptly.
const waitFor = 10 * time.Second

func acquire(t *testing.T, l *Locker, name string) *Lease {
	t.Helper()
	lease, err := l.TryAcquire(t.Context(), name)
	if err != nil {
		t.Fatalf("TryAcquire(%q): %v", name, err)
	}
	return lease
}

func TestTryAcquire(t *testing.T) { forEach(t, testTryAcquire) }

// A held lock refuses a second lease with the holder's token and expiry; a released one is
// taken again with a later token.
func testTryAcquire(t *testing.T, h harness) {
	a, b := h.locker(t, WithOwner("a")), h.locker(t, WithOwner("b"))
	la := acquire(t, a, "job")
	if la.Name() != "job" || la.Token().Version == 0 || la.Token().Epoch == "" || la.ExpiresAt().IsZero() {
		t.Fatalf("lease %+v", la)
	}
	_, err := b.TryAcquire(t.Context(), "job")
	var held *HeldError
	if !errors.As(err, &held) || !errors.Is(err, ErrNotAcquired) || held.Owner != "a" || held.Token != la.Token() ||
		!held.ExpiresAt.Equal(la.ExpiresAt()) || held.Name != "job" {
		t.Fatalf("second TryAcquire: %v (%+v), want a HeldError of owner a, token %v, expiry %v", err, held, la.Token(), la.ExpiresAt())
	}
	if err := la.Release(t.Context()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := la.Extend(t.Context()); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Extend after Release: %v, want ErrLeaseLost", err)
	}
	lb := acquire(t, b, "job")
	if lb.Token().Compare(la.Token()) <= 0 {
		t.Fatalf("token %v after %v", lb.Token(), la.Token())
	}
	// Another name is another lock.
	acquire(t, a, "other")
	if _, err := a.TryAcquire(t.Context(), ""); !errors.Is(err, ephemeral.ErrInvalidTenant) {
		t.Fatalf("TryAcquire of an empty name: %v, want ErrInvalidTenant", err)
	} else if want := "ephemeral: invalid tenant: lock name of 0 bytes, want 1 to 256 (a lock's name is the tenant it is kept in)"; err.Error() != want {
		t.Fatalf("TryAcquire of an empty name: %v, want %s", err, want)
	}
	if _, err := a.Acquire(t.Context(), strings.Repeat("n", ephemeral.MaxTenantBytes+1)); !errors.Is(err, ephemeral.ErrInvalidTenant) {
		t.Fatalf("Acquire of a name of %d bytes: %v, want ErrInvalidTenant", ephemeral.MaxTenantBytes+1, err)
	}
	// An invalid name never queues: with a call queued before it and its ctx ended, it still
	// says what is wrong with the name.
	a.mu.Lock()
	a.queues = map[string][]chan struct{}{"": {make(chan struct{})}}
	a.mu.Unlock()
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := a.Acquire(ended, ""); !errors.Is(err, ephemeral.ErrInvalidTenant) || errors.Is(err, ErrNotAcquired) {
		t.Fatalf("Acquire of an empty name behind a queued call, ctx ended: %v, want ErrInvalidTenant only", err)
	}
}

func TestMutualExclusion(t *testing.T) { forEach(t, testMutualExclusion) }

// N goroutines x M iterations increment a counter without atomics under the lock: no update is
// lost, no two holders overlap (an atomic detector besides the race detector) and the tokens
// that the holders see strictly increase.
func testMutualExclusion(t *testing.T, h harness) {
	const n, m = 8, 25
	var (
		counter  int
		inside   atomic.Int32
		overlaps atomic.Int32
		last     Token // guarded by the lock under test
		regress  atomic.Int32
	)
	var wg sync.WaitGroup
	for g := range n {
		l := h.locker(t, WithOwner(fmt.Sprint("g", g)), WithTTL(max(h.ttl(), 5*time.Second)))
		wg.Go(func() {
			for range m {
				err := l.WithLock(t.Context(), "counter", func(ctx context.Context, lease *Lease) error {
					if inside.Add(1) != 1 {
						overlaps.Add(1)
					}
					if lease.Token().Compare(last) <= 0 {
						regress.Add(1)
					}
					last = lease.Token()
					counter++
					inside.Add(-1)
					return nil
				})
				if err != nil {
					t.Errorf("WithLock: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if counter != n*m || overlaps.Load() != 0 || regress.Load() != 0 {
		t.Fatalf("counter %d, want %d; %d overlaps, %d token regressions", counter, n*m, overlaps.Load(), regress.Load())
	}
}

func TestTokensAcrossFullExpiry(t *testing.T) { forEach(t, testTokensAcrossFullExpiry) }

// Tokens strictly increase across releases, expiries, and a full expiry of the lock's state
// (the lock free for longer than the event retention: its version restarts under a new epoch).
func testTokensAcrossFullExpiry(t *testing.T, h harness) {
	retention := 100 * time.Millisecond
	l := h.locker(t, WithLimits(ephemeral.Limits{EventRetention: retention}))
	var tokens []Token
	for range 3 {
		le := acquire(t, l, "fenced")
		tokens = append(tokens, le.Token())
		if err := le.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	tokens = append(tokens, acquire(t, l, "fenced").Token()) // left to expire
	h.advance(h.ttl() + time.Millisecond)
	tokens = append(tokens, acquire(t, l, "fenced").Token()) // after an expiry
	// A full expiry: the lease runs out and its state outlives it by the retention (and, on
	// Redis, a quarter more for slack); the state is then made anew at version 1.
	for i := 0; ; i++ {
		h.advance(h.ttl() + 3*retention)
		le := acquire(t, l, "fenced")
		tokens = append(tokens, le.Token())
		if le.Token().Version == 1 || i == 5 {
			break
		}
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i].Compare(tokens[i-1]) <= 0 {
			t.Fatalf("token %d %v does not follow %v (all %v)", i, tokens[i], tokens[i-1], tokens)
		}
	}
	if last := tokens[len(tokens)-1]; last.Version != 1 || last.Epoch == tokens[0].Epoch {
		t.Fatalf("after a full expiry: token %v, want version 1 of a new epoch (all %v)", last, tokens)
	}
}

func TestStaleToken(t *testing.T) { forEach(t, testStaleToken) }

// A lease that ran out can neither release nor extend the lock's next lease.
func testStaleToken(t *testing.T, h harness) {
	a, b := h.locker(t), h.locker(t)
	old := acquire(t, a, "stale")
	h.advance(h.ttl() + time.Millisecond)
	var next *Lease
	deadline := time.Now().Add(waitFor)
	for next == nil {
		var err error
		if next, err = b.TryAcquire(t.Context(), "stale"); err != nil && time.Now().After(deadline) {
			t.Fatalf("TryAcquire after the old lease's TTL: %v", err)
		}
		if next == nil {
			time.Sleep(time.Millisecond) // a real server expires at its own pace
		}
	}
	if err := old.Release(t.Context()); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Release of the stale lease: %v, want ErrLeaseLost", err)
	}
	if err := old.Extend(t.Context()); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Extend of the stale lease: %v, want ErrLeaseLost", err)
	}
	var held *HeldError
	if _, err := a.TryAcquire(t.Context(), "stale"); !errors.As(err, &held) || held.Token != next.Token() {
		t.Fatalf("TryAcquire while the next lease holds: %v, want held by %v", err, next.Token())
	}
	if err := next.Extend(t.Context()); err != nil {
		t.Fatalf("Extend of the next lease: %v", err)
	}
	if next.Token() != held.Token || next.Token().Compare(old.Token()) <= 0 {
		t.Fatalf("next token %v, old %v", next.Token(), old.Token())
	}
}

func TestHolderStopsExtending(t *testing.T) { forEach(t, testHolderStopsExtending) }

// A holder that stops extending loses the lease after its TTL: its fn's ctx ends with a
// LostError, WithLock reports it, and another owner takes the lock.
func testHolderStopsExtending(t *testing.T, h harness) {
	rec := &lossRecorder{}
	l := h.locker(t, WithObserver(rec))
	l.extendEvery = time.Hour
	other := h.locker(t)
	var cause error
	started := time.Now()
	err := l.WithLock(t.Context(), "paused", func(ctx context.Context, lease *Lease) error {
		h.advance(h.ttl() + time.Millisecond)
		select {
		case <-ctx.Done():
			cause = context.Cause(ctx)
		case <-time.After(waitFor):
			t.Errorf("fn's ctx still live %v after the lease's TTL", waitFor)
		}
		return nil
	})
	var lost *LostError
	if !errors.As(cause, &lost) || !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("fn's ctx ended with %v, WithLock returned %v; want a LostError", cause, err)
	}
	if h.real && time.Since(started) < h.ttl()/2 {
		t.Fatalf("lease lost after %v, before its TTL %v", time.Since(started), h.ttl())
	}
	lease, err := other.Acquire(t.Context(), "paused")
	if err != nil || lease.Token().Compare(lost.Token) <= 0 {
		t.Fatalf("Acquire after the lost lease: %v, %v; want a token after %v", lease, err, lost.Token)
	}
	// On a fake clock the lease's local deadline (0.9 of 10 s) is far: the expire event tells.
	got := rec.all()
	if len(got) != 1 || got[0][0] != DefaultStoreID || got[0][1] != "paused" ||
		!h.real && got[0][2] != LossGone || got[0][2] != LossGone && got[0][2] != LossDeadline {
		t.Errorf("losses reported %v, want one of lock paused, %s", got, LossGone)
	}
}

// lossRecorder is an Observer that keeps what it is told.
type lossRecorder struct {
	mu     sync.Mutex
	losses [][3]string // store, name, reason
}

func (r *lossRecorder) LeaseLost(store, name, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.losses = append(r.losses, [3]string{store, name, reason})
}

func (r *lossRecorder) all() [][3]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][3]string(nil), r.losses...)
}

// A lease whose extends do not succeed is lost at its local deadline, on this process's
// clock, while the backend (whose fake clock stands still) still holds it: the Observer is
// told so, once, and WithLock's release frees the lock. A lease released by its holder, and
// the calls on it after that, report nothing.
func TestLeaseLostDeadline(t *testing.T) {
	h := newMemstore(t)
	rec := &lossRecorder{}
	l := h.locker(t, WithObserver(rec), WithTTL(100*time.Millisecond), WithStoreID("locks"))
	l.extendEvery = time.Hour
	err := l.WithLock(t.Context(), "slow", func(ctx context.Context, lease *Lease) error {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(waitFor):
			return fmt.Errorf("fn's ctx still live %v after the lease's local deadline", waitFor)
		}
	})
	if !errors.Is(err, ErrLeaseLost) || !strings.Contains(err.Error(), "not extended before its expiry: no extend succeeded within 0.9 of the TTL") {
		t.Fatalf("WithLock: %v, want a LostError of the deadline", err)
	}
	want := [][3]string{{"locks", "slow", LossDeadline}}
	if got := rec.all(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("losses reported %v, want %v", got, want)
	}
	lease := acquire(t, l, "slow") // WithLock released the lease it lost
	if err := lease.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := lease.Extend(t.Context()); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Extend after Release: %v, want ErrLeaseLost", err)
	}
	if err := lease.Release(t.Context()); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("second Release: %v, want ErrLeaseLost", err)
	}
	if got := rec.all(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("losses reported %v after a lease released by its holder, want still %v", got, want)
	}
}

func TestWithLockExtends(t *testing.T) { forEach(t, testWithLockExtends) }

// WithLock keeps its lease alive while fn runs for several TTLs, and releases it at the end.
func testWithLockExtends(t *testing.T, h harness) {
	// On a fake clock the lease cannot run out, but the extends run all the same. The TTL is
	// 2 s, not less: WithLock gives up after 0.9 TTL without a successful extend, and a busy CI
	// machine running -race can hold an extend up for a second.
	l, err := New(h.b, WithTTL(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var token Token
	err = l.WithLock(t.Context(), "long", func(ctx context.Context, lease *Lease) error {
		token = lease.Token()
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(5 * time.Second):
			return nil
		}
	})
	if err != nil {
		t.Fatalf("WithLock over 2.5 TTLs: %v", err)
	}
	lease := acquire(t, l, "long")
	if lease.Token().Compare(token) <= 0 {
		t.Fatalf("token %v after %v", lease.Token(), token)
	}
}

func TestAcquireWokenByEvents(t *testing.T) { forEach(t, testAcquireWokenByEvents) }

// A waiter whose backoff is an hour still takes the lock promptly when it is released and when
// its lease expires: the lock's events wake it.
func testAcquireWokenByEvents(t *testing.T, h harness) {
	holder := h.locker(t)
	waiter := h.locker(t, WithRetry(time.Hour, time.Hour))
	waiting := make(chan struct{}, 1)
	waiter.waiting = func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	for _, how := range []string{"release", "expiry"} {
		lease := acquire(t, holder, "wake")
		got := make(chan error, 1)
		go func() {
			le, err := waiter.Acquire(t.Context(), "wake")
			if err == nil && le.Token().Compare(lease.Token()) <= 0 {
				err = fmt.Errorf("token %v after %v", le.Token(), lease.Token())
			}
			if err == nil {
				err = le.Release(context.Background())
			}
			got <- err
		}()
		// The waiter has tried, failed with its reader started and is waiting: only an event
		// can wake it before its backoff of half an hour at least.
		select {
		case <-waiting:
		case err := <-got:
			t.Fatalf("before the %s: Acquire returned %v, want it to wait", how, err)
		case <-time.After(waitFor):
			t.Fatalf("waiter not waiting %v after it started", waitFor)
		}
		if how == "release" {
			if err := lease.Release(t.Context()); err != nil {
				t.Fatal(err)
			}
		} else {
			h.advance(h.ttl() + time.Millisecond)
		}
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("after %s: %v", how, err)
			}
		case <-time.After(waitFor):
			t.Fatalf("waiter not woken %v after the %s", waitFor, how)
		}
	}
}

func TestAcquireTimeout(t *testing.T) { forEach(t, testAcquireTimeout) }

// Acquire gives up when its ctx ends, with an error matching both the ctx's and ErrNotAcquired.
func testAcquireTimeout(t *testing.T, h harness) {
	l := h.locker(t)
	acquire(t, l, "busy")
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := l.Acquire(ctx, "busy")
	var held *HeldError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &held) {
		t.Fatalf("Acquire of a held lock until a deadline: %v, want DeadlineExceeded and a HeldError", err)
	}
}

func TestToken(t *testing.T) {
	a := Token{Epoch: "019ad20f287b00000001", Version: 9}
	for _, c := range []struct {
		b    Token
		want int
	}{
		{Token{"019ad20f287b00000001", 9}, 0},
		{Token{"019ad20f287b00000001", 10}, -1},
		{Token{"019ad20f287b00000001", 8}, 1},
		{Token{"019ad20f287c00000000", 1}, -1}, // a later epoch, whatever its version
		{Token{"019ad20f287affffffff", 100}, 1},
	} {
		if got := a.Compare(c.b); got != c.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", a, c.b, got, c.want)
		}
	}
	if got, err := ParseToken(a.String()); err != nil || got != a {
		t.Errorf("ParseToken(%q) = %v, %v", a.String(), got, err)
	}
	if _, err := ParseToken("nope"); !errors.Is(err, ephemeral.ErrInvalidCursor) {
		t.Errorf("ParseToken(nope): %v", err)
	}
}

func TestNewInvalid(t *testing.T) {
	h := newMemstore(t)
	for _, opts := range [][]Option{
		{WithTTL(0)},
		{WithTTL(MinTTL - time.Millisecond)},
		{WithRetry(0, time.Second)},
		{WithRetry(time.Second, time.Millisecond)},
		{WithStoreID("")},
	} {
		if _, err := New(h.b, opts...); err == nil {
			t.Errorf("New with invalid options succeeded")
		}
	}
}

// retryingBackend applies every upsert twice and returns the second result, as a client does
// that sends a write again after its reply was lost.
type retryingBackend struct{ ephemeral.Backend }

func (b retryingBackend) Open(id string, l backend.Limits) (backend.Store, error) {
	st, err := b.Backend.Open(id, l)
	return retryingStore{st}, err
}

type retryingStore struct{ backend.Store }

func (s retryingStore) Upsert(ctx context.Context, tenant string, req backend.UpsertRequest) (backend.Entry, error) {
	if _, err := s.Store.Upsert(ctx, tenant, req); err != nil {
		return backend.Entry{}, err
	}
	return s.Store.Upsert(ctx, tenant, req)
}

// An acquire that was applied and then sent again conflicts with itself: TryAcquire finds its
// own lease (by the holder's nonce and time: an owner that is not valid UTF-8 is stored with
// U+FFFD in its place) and returns it, and another Locker still finds it held.
func TestAcquireSentTwice(t *testing.T) {
	for _, owner := range []string{"me", "worker-\xff"} {
		t.Run(fmt.Sprintf("%q", owner), func(t *testing.T) {
			h := newMemstore(t)
			l, err := New(retryingBackend{h.b}, WithOwner(owner))
			if err != nil {
				t.Fatal(err)
			}
			lease := acquire(t, l, "twice")
			if lease.Token().Version != 1 {
				t.Fatalf("token %v, want version 1, the first upsert", lease.Token())
			}
			if _, err := l.TryAcquire(t.Context(), "twice"); !errors.Is(err, ErrNotAcquired) {
				t.Fatalf("second TryAcquire of the same owner: %v, want ErrNotAcquired", err)
			}
			if err := lease.Release(t.Context()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// lostReplyBackend applies every remove and then fails it, as a connection does that drops
// the reply of a write the server applied.
type lostReplyBackend struct{ ephemeral.Backend }

func (b lostReplyBackend) Open(id string, l backend.Limits) (backend.Store, error) {
	st, err := b.Backend.Open(id, l)
	return lostReplyStore{st}, err
}

type lostReplyStore struct{ backend.Store }

var errLostReply = errors.New("connection reset before the reply")

func (s lostReplyStore) Remove(ctx context.Context, tenant string, req backend.RemoveRequest) (bool, error) {
	if _, err := s.Store.Remove(ctx, tenant, req); err != nil {
		return false, err
	}
	return false, errLostReply
}

// A Release whose reply was lost leaves the outcome unknown; called again, it finds the lease
// gone and says that the first call may have released it. The lock is free either way.
func TestReleaseReplyLost(t *testing.T) {
	h := newMemstore(t)
	l, err := New(lostReplyBackend{h.b}, WithOwner("me"))
	if err != nil {
		t.Fatal(err)
	}
	lease := acquire(t, l, "lost-reply")
	if err := lease.Release(t.Context()); !errors.Is(err, errLostReply) || errors.Is(err, ErrLeaseLost) {
		t.Fatalf("first Release: %v, want the backend's error", err)
	}
	err = lease.Release(t.Context())
	var lost *LostError
	if !errors.As(err, &lost) || !strings.Contains(lost.Reason, "earlier Release") {
		t.Fatalf("second Release: %v, want a *LostError that names the earlier Release", err)
	}
	other, err := New(h.b, WithOwner("other"))
	if err != nil {
		t.Fatal(err)
	}
	if err := acquire(t, other, "lost-reply").Release(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// The Acquire calls of one Locker for one name take the lock in the order they came, and one
// that releases the lock and asks for it again at once waits behind the others.
func TestAcquireQueued(t *testing.T) {
	h := newMemstore(t)
	l := h.locker(t)
	held := acquire(t, l, "fifo")
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	take := func(who string) error {
		lease, err := l.Acquire(t.Context(), "fifo")
		if err != nil {
			return err
		}
		mu.Lock()
		order = append(order, who)
		mu.Unlock()
		return lease.Release(t.Context())
	}
	for i, who := range []string{"a", "b", "c"} {
		wg.Go(func() {
			err := take(who)
			if err == nil && who == "a" {
				err = take("a again") // behind b and c, which wait
			}
			if err != nil {
				t.Error(err)
			}
		})
		waitQueued(t, l, "fifo", i+1)
	}
	if err := held.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if want := []string{"a", "b", "c", "a again"}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("acquired in the order %q, want %q", order, want)
	}
	if len(l.queues) != 0 {
		t.Errorf("queues left: %v", l.queues)
	}
}

// An Acquire whose ctx ends while it is queued leaves the queue: the ones behind it still get
// the lock, in order, and it fails with ctx's error and ErrNotAcquired.
func TestAcquireQueuedCancel(t *testing.T) {
	h := newMemstore(t)
	l := h.locker(t)
	held := acquire(t, l, "fifo")
	first := make(chan error, 1)
	go func() {
		lease, err := l.Acquire(t.Context(), "fifo") // first in the queue: it tries
		if err == nil {
			err = lease.Release(t.Context())
		}
		first <- err
	}()
	waitQueued(t, l, "fifo", 1) // before the second starts, so that the second is the one queued behind
	ctx, cancel := context.WithCancel(t.Context())
	second := make(chan error, 1)
	go func() {
		_, err := l.Acquire(ctx, "fifo")
		second <- err
	}()
	waitQueued(t, l, "fifo", 2)
	cancel()
	if err := <-second; !errors.Is(err, context.Canceled) || !errors.Is(err, ErrNotAcquired) {
		t.Fatalf("queued Acquire after its ctx ended: %v, want context.Canceled and ErrNotAcquired", err)
	} else if !strings.Contains(err.Error(), "queued behind") {
		// It never tried the lock: the error says why it did not, not just "held".
		t.Errorf("queued Acquire after its ctx ended: %v, want it to say that it was queued", err)
	}
	if err := held.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first Acquire: %v", err)
	}
	third, err := l.Acquire(t.Context(), "fifo")
	if err != nil {
		t.Fatal(err)
	}
	third.Release(t.Context())
	if len(l.queues) != 0 {
		t.Errorf("queues left: %v", l.queues)
	}
}

// An Acquire whose ctx has ended, of a free lock that no one waits for, does not say that the
// lock is held: its error is ctx's alone, every time.
func TestAcquireEndedCtxFreeLock(t *testing.T) {
	h := newMemstore(t)
	l := h.locker(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for range 200 {
		lease, err := l.Acquire(ctx, "free")
		if err == nil {
			lease.Release(t.Context())
			continue
		}
		if errors.Is(err, ErrNotAcquired) {
			t.Fatalf("Acquire of a free lock with an ended ctx: %v, want no ErrNotAcquired", err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queues) != 0 {
		t.Errorf("queues left: %v", l.queues)
	}
}

// An Extend after a Release whose reply was lost finds the lease gone, which that Release may
// have done itself: the lease is lost, but not reported as lost while held, as a second Release
// is not either.
func TestExtendAfterReleaseReplyLost(t *testing.T) {
	h := newMemstore(t)
	rec := &lossRecorder{}
	l, err := New(lostReplyBackend{h.b}, WithObserver(rec))
	if err != nil {
		t.Fatal(err)
	}
	lease := acquire(t, l, "lost-reply")
	if err := lease.Release(t.Context()); !errors.Is(err, errLostReply) {
		t.Fatalf("Release: %v, want the backend's error", err)
	}
	err = lease.Extend(t.Context())
	var lost *LostError
	if !errors.As(err, &lost) || !strings.Contains(lost.Reason, "earlier Release") {
		t.Fatalf("Extend after the Release: %v, want a *LostError that names the earlier Release", err)
	}
	if got := rec.all(); len(got) != 0 {
		t.Errorf("losses reported %v, want none: the lease's own Release may have freed it", got)
	}
}

// waitQueued waits until n Acquire calls of l for name are queued, the first among them, and
// fails if that takes longer than waitFor.
func waitQueued(t *testing.T, l *Locker, name string, n int) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		got := len(l.queues[name])
		l.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Acquire calls queued after %v, want %d", got, waitFor, n)
		}
	}
}
