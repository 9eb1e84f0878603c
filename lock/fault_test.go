package lock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// faultBackend opens stores whose calls a test can make fail or hang: each hook, when set, runs
// in place of the store's call and may call it.
type faultBackend struct {
	ephemeral.Backend
	upsert func(ctx context.Context, st backend.Store, tenant string, req backend.UpsertRequest) (backend.Entry, error)
	touch  func(ctx context.Context, st backend.Store, tenant string, req backend.TouchRequest) (backend.TouchResult, error)
	remove func(ctx context.Context, st backend.Store, tenant string, req backend.RemoveRequest) (bool, error)
}

func (b *faultBackend) Open(id string, l backend.Limits) (backend.Store, error) {
	st, err := b.Backend.Open(id, l)
	return faultStore{st, b}, err
}

type faultStore struct {
	backend.Store
	b *faultBackend
}

func (s faultStore) Upsert(ctx context.Context, tenant string, req backend.UpsertRequest) (backend.Entry, error) {
	if s.b.upsert != nil {
		return s.b.upsert(ctx, s.Store, tenant, req)
	}
	return s.Store.Upsert(ctx, tenant, req)
}

func (s faultStore) Touch(ctx context.Context, tenant string, req backend.TouchRequest) (backend.TouchResult, error) {
	if s.b.touch != nil {
		return s.b.touch(ctx, s.Store, tenant, req)
	}
	return s.Store.Touch(ctx, tenant, req)
}

func (s faultStore) Remove(ctx context.Context, tenant string, req backend.RemoveRequest) (bool, error) {
	if s.b.remove != nil {
		return s.b.remove(ctx, s.Store, tenant, req)
	}
	return s.Store.Remove(ctx, tenant, req)
}

// An extend that hangs past its ctx (as a go-redis call does on a network that went silent,
// without Options.ContextTimeoutEnabled) does not hold up the lease's local deadline: fn's ctx
// ends at it while the extend still hangs, and WithLock then releases the lease, which the
// backend still held, so that the lock is free at once.
func TestExtendHangs(t *testing.T) {
	h := newMemstore(t) // its clock stands still: only the local deadline can end the lease
	fb, hang, hung := hangingTouches(h.b)
	l, err := New(fb, WithTTL(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var cause error
	err = l.WithLock(t.Context(), "hang", func(ctx context.Context, _ *Lease) error {
		select {
		case <-hung:
		case <-time.After(waitFor):
			t.Fatalf("no extend within %v", waitFor)
		}
		select {
		case <-ctx.Done():
			cause = context.Cause(ctx)
		case <-time.After(waitFor):
			t.Errorf("fn's ctx still live %v after the lease's local deadline, with its extend hanging", waitFor)
		}
		close(hang)
		return nil
	})
	var lost *LostError
	if !errors.As(cause, &lost) || !strings.Contains(lost.Reason, "not extended") || !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("fn's ctx ended with %v, WithLock returned %v; want a LostError of the local deadline", cause, err)
	}
	acquire(t, h.locker(t), "hang") // released by WithLock, though lost by the local deadline only
}

// An acquire whose outcome is unknown (applied, then its reply lost) does not leave the lock
// held by nobody: TryAcquire returns the error and frees the lock it took.
func TestAcquireReplyLost(t *testing.T) {
	h := newMemstore(t)
	fb := &faultBackend{Backend: h.b, upsert: func(ctx context.Context, st backend.Store, tenant string, req backend.UpsertRequest) (backend.Entry, error) {
		if _, err := st.Upsert(ctx, tenant, req); err != nil {
			return backend.Entry{}, err
		}
		return backend.Entry{}, errLostReply
	}}
	l, err := New(fb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.TryAcquire(t.Context(), "orphan"); !errors.Is(err, errLostReply) {
		t.Fatalf("TryAcquire whose reply was lost: %v, want the backend's error", err)
	}
	acquire(t, h.locker(t), "orphan")
}

// An acquire whose ctx ends while its call is out, applied all the same, frees the lock too.
func TestAcquireCanceledInFlight(t *testing.T) {
	h := newMemstore(t)
	ctx, cancel := context.WithCancel(t.Context())
	fb := &faultBackend{Backend: h.b, upsert: func(_ context.Context, st backend.Store, tenant string, req backend.UpsertRequest) (backend.Entry, error) {
		cancel() // the caller gives up while the call is out, and the backend applies it
		if _, err := st.Upsert(context.Background(), tenant, req); err != nil {
			return backend.Entry{}, err
		}
		return backend.Entry{}, ctx.Err()
	}}
	l, err := New(fb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, "gave-up"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire canceled in flight: %v, want context.Canceled", err)
	}
	acquire(t, h.locker(t), "gave-up")
}

// A panic in fn releases the lease and stops its extends (goleak checks the goroutines).
func TestWithLockPanics(t *testing.T) {
	h := newMemstore(t)
	l := h.locker(t)
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Fatalf("recovered %v, want the panic of fn", p)
			}
		}()
		l.WithLock(t.Context(), "panics", func(context.Context, *Lease) error { panic("boom") })
	}()
	acquire(t, h.locker(t), "panics")
}

// A fn that releases its lease itself, early, makes WithLock return fn's error alone: the
// lease was not lost, the lock is free, and no loss is reported.
func TestWithLockReleasedByFn(t *testing.T) {
	h := newMemstore(t)
	obs := &lossRecorder{}
	l := h.locker(t, WithObserver(obs))
	err := l.WithLock(t.Context(), "early", func(ctx context.Context, lease *Lease) error {
		return lease.Release(ctx)
	})
	if err != nil {
		t.Fatalf("WithLock whose fn released the lease: %v, want nil", err)
	}
	if _, err := h.locker(t).TryAcquire(t.Context(), "early"); err != nil {
		t.Fatalf("TryAcquire after fn released the lock: %v", err)
	}
	if got := obs.all(); len(got) != 0 {
		t.Fatalf("losses reported: %v, want none", got)
	}
}

// A waiter whose backoff is an hour returns when the backend is closed, not after the hour.
func TestAcquireBackendClosed(t *testing.T) {
	h := newMemstore(t)
	holder := h.locker(t)
	acquire(t, holder, "closing")
	l := h.locker(t, WithRetry(time.Hour, time.Hour))
	waiting := make(chan struct{}, 1)
	l.waiting = func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Acquire(t.Context(), "closing")
		done <- err
	}()
	select {
	case <-waiting:
	case <-time.After(waitFor):
		t.Fatalf("the waiter did not wait within %v", waitFor)
	}
	h.b.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ephemeral.ErrClosed) {
			t.Fatalf("Acquire after the backend closed: %v, want ErrClosed", err)
		}
	case <-time.After(waitFor):
		t.Fatalf("Acquire still waiting %v after the backend closed", waitFor)
	}
}

// A fn that returns before the lease's local deadline, while an extend hangs, did its work
// under a lease that was held: the deadline passing while WithLock waits for that extend, before
// it releases the lease, is no loss. WithLock returns fn's nil (its release frees the lease,
// which the backend still held) and the Observer hears of no loss.
func TestWithLockReturnedBeforeDeadline(t *testing.T) {
	h := newMemstore(t) // its clock stands still: the backend holds the lease throughout
	fb, hang, hung := hangingTouches(h.b)
	rec := &lossRecorder{}
	l, err := New(fb, WithTTL(600*time.Millisecond), WithObserver(rec))
	if err != nil {
		t.Fatal(err)
	}
	err = l.WithLock(t.Context(), "returned", func(ctx context.Context, lease *Lease) error {
		select {
		case <-hung:
		case <-time.After(waitFor):
			return fmt.Errorf("no extend within %v", waitFor)
		}
		if !time.Now().Before(lease.localDeadline()) {
			return errors.New("fn returns after the lease's local deadline: the machine is too slow for this test")
		}
		// fn is done. Once its ctx has ended (at the deadline, which passes while WithLock
		// waits for the hung extend, or at the release), the extend comes back.
		go func() {
			<-ctx.Done()
			close(hang)
		}()
		return nil
	})
	if err != nil {
		t.Errorf("WithLock of a fn that returned before the lease's deadline: %v, want nil", err)
	}
	if got := rec.all(); len(got) != 0 {
		t.Errorf("losses reported %v, want none", got)
	}
	acquire(t, h.locker(t), "returned") // released
}

// An Extend that finds the lease gone because a Release of it, in another goroutine, was applied
// first (its reply not yet back) reports no loss: the lease's own holder freed it.
func TestExtendDuringRelease(t *testing.T) {
	h := newMemstore(t)
	removed, proceed := make(chan struct{}), make(chan struct{})
	fb := &faultBackend{Backend: h.b, remove: func(ctx context.Context, st backend.Store, tenant string, req backend.RemoveRequest) (bool, error) {
		ok, err := st.Remove(ctx, tenant, req)
		close(removed)
		<-proceed // the reply is on its way
		return ok, err
	}}
	rec := &lossRecorder{}
	l, err := New(fb, WithObserver(rec))
	if err != nil {
		t.Fatal(err)
	}
	lease := acquire(t, l, "both")
	released := make(chan error, 1)
	go func() { released <- lease.Release(context.Background()) }()
	<-removed
	if err := lease.Extend(t.Context()); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Extend after the Release was applied: %v, want ErrLeaseLost", err)
	}
	close(proceed)
	if err := <-released; err != nil {
		t.Errorf("Release: %v", err)
	}
	if got := rec.all(); len(got) != 0 {
		t.Errorf("losses reported %v for a lease its holder released, want none", got)
	}
}

// hangingTouches returns b with every touch (an extend) hanging, whatever its ctx says, until
// hang is closed; hung receives a value when one starts to hang (dropped when one is pending).
func hangingTouches(b backend.Backend) (fb *faultBackend, hang chan struct{}, hung chan struct{}) {
	hang, hung = make(chan struct{}), make(chan struct{}, 1)
	fb = &faultBackend{Backend: b, touch: func(ctx context.Context, st backend.Store, tenant string, req backend.TouchRequest) (backend.TouchResult, error) {
		select {
		case hung <- struct{}{}:
		default:
		}
		<-hang
		return st.Touch(ctx, tenant, req)
	}}
	return fb, hang, hung
}
