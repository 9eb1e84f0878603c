// Command lock is the example of package lock: workers update a ledger under a lock, and the
// ledger fences their writes by the lease's token, so that a worker that was paused past its
// lease's TTL cannot overwrite the work of the next holder. Run it with
//
//	go run ./examples/lock
//
// It uses the in-memory backend; the same code runs on runtime/redisstore across processes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/lock"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := memstore.New()
	defer b.Close()
	// With the system clock, time passes by itself: the paused worker's lease runs out while
	// the demo sleeps.
	if err := run(ctx, os.Stdout, b, time.Sleep); err != nil {
		log.Fatal(err)
	}
}

// ErrFenced is the ledger's error for a write with a token older than one it has seen.
var ErrFenced = errors.New("ledger: stale fencing token")

// Ledger is the protected resource, the "storage" side: it keeps a balance and the highest
// fencing token it has accepted, and rejects writes with a lower one. In a real system this is
// a database row updated with "WHERE token < $new" or a service that checks the token.
type Ledger struct {
	mu      sync.Mutex
	balance int
	token   lock.Token
}

// Add adds amount to the balance if token is not older than the last accepted one.
func (l *Ledger) Add(token lock.Token, amount int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if token.Compare(l.token) < 0 {
		return fmt.Errorf("%w: %v, the ledger has seen %v", ErrFenced, token, l.token)
	}
	l.token = token
	l.balance += amount
	return nil
}

// Balance returns the balance.
func (l *Ledger) Balance() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.balance
}

// run is the demo on backend b; elapse lets time pass (the test's fake clock advances).
func run(ctx context.Context, w io.Writer, b ephemeral.Backend, elapse func(time.Duration)) error {
	const ttl = 200 * time.Millisecond
	ledger := &Ledger{}

	// Four workers add 10 each, one at a time: WithLock keeps the lease alive while fn runs.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		locks, err := lock.New(b, lock.WithTTL(ttl), lock.WithOwner(fmt.Sprint("worker-", i)))
		if err != nil {
			return err
		}
		wg.Go(func() {
			errs <- locks.WithLock(ctx, "ledger", func(ctx context.Context, lease *lock.Lease) error {
				return ledger.Add(lease.Token(), 10)
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "balance after 4 workers:", ledger.Balance())

	// A worker takes the lock, then pauses (a GC pause, a stopped VM) past its TTL.
	slow, err := lock.New(b, lock.WithTTL(ttl), lock.WithOwner("slow"))
	if err != nil {
		return err
	}
	fast, err := lock.New(b, lock.WithTTL(ttl), lock.WithOwner("fast"))
	if err != nil {
		return err
	}
	stale, err := slow.TryAcquire(ctx, "ledger")
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "slow holds the lock")
	elapse(ttl + 50*time.Millisecond)

	// Meanwhile the lease expired and another worker took the lock and wrote.
	lease, err := fast.Acquire(ctx, "ledger")
	if err != nil {
		return err
	}
	if err := ledger.Add(lease.Token(), 100); err != nil {
		return err
	}
	fmt.Fprintln(w, "fast wrote 100 with a later token:", lease.Token().Compare(stale.Token()) > 0)

	// The slow worker wakes up and writes: the ledger rejects its token, and its lease is gone.
	err = ledger.Add(stale.Token(), 1000)
	fmt.Fprintln(w, "slow's write is fenced:", errors.Is(err, ErrFenced))
	fmt.Fprintln(w, "slow's extend fails:", errors.Is(stale.Extend(ctx), lock.ErrLeaseLost))
	fmt.Fprintln(w, "slow's release frees nothing:", errors.Is(stale.Release(ctx), lock.ErrLeaseLost))
	if err := lease.Release(ctx); err != nil {
		return err
	}
	fmt.Fprintln(w, "balance:", ledger.Balance())
	return nil
}
