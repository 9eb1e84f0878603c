package lock_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ephemeral-go/ephemeral/lock"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

// WithLock runs a function under a lock, extends the lease while it runs and releases it at the
// end. The lease's token goes with every write to the protected resource, which rejects tokens
// lower than the highest it has seen.
func ExampleLocker_WithLock() {
	b := memstore.New()
	defer b.Close()
	locks, err := lock.New(b, lock.WithTTL(10*time.Second))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for range 2 {
		err := locks.WithLock(ctx, "nightly-report", func(ctx context.Context, lease *lock.Lease) error {
			// ctx ends if the lease is lost; pass lease.Token() to the storage.
			fmt.Println("running the report with token version", lease.Token().Version)
			return nil
		})
		if err != nil {
			panic(err)
		}
	}
	// Output:
	// running the report with token version 1
	// running the report with token version 3
}

// TryAcquire does not wait: a held lock fails with a *HeldError that names the holder.
func ExampleLocker_TryAcquire() {
	b := memstore.New()
	defer b.Close()
	ctx := context.Background()
	alice, _ := lock.New(b, lock.WithOwner("alice"))
	bob, _ := lock.New(b, lock.WithOwner("bob"))

	lease, err := alice.TryAcquire(ctx, "printer")
	if err != nil {
		panic(err)
	}
	_, err = bob.TryAcquire(ctx, "printer")
	var held *lock.HeldError
	if errors.As(err, &held) {
		fmt.Println("bob: held by", held.Owner, "with token version", held.Token.Version)
	}
	if err := lease.Release(ctx); err != nil {
		panic(err)
	}
	if lease, err := bob.TryAcquire(ctx, "printer"); err == nil {
		fmt.Println("bob: acquired with token version", lease.Token().Version)
	}
	// A released (or expired) lease can no longer extend or release anything.
	fmt.Println("alice extends:", errors.Is(lease.Extend(ctx), lock.ErrLeaseLost))
	// Output:
	// bob: held by alice with token version 1
	// bob: acquired with token version 3
	// alice extends: true
}
