package lock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/redisstore"
	"github.com/redis/go-redis/v9"
)

// A holder whose connections are killed again and again (CLIENT KILL) while WithLock runs keeps
// its lease or reports it lost, and another owner never takes the lock while the holder's fn
// still runs with a live ctx before the lease's local deadline. (Past the deadline, the ctx is
// cancelled by a timer that a loaded machine may run late; that is what fencing tokens are for.)
func TestKilledConnection(t *testing.T) {
	admin := redistest.Client(t)
	addr := admin.Options().Addr
	name := "locktest-" + backend.NewEpoch(time.Now())
	prefix := "ephemeral-" + name
	defer redistest.DeleteKeys(context.Background(), admin, prefix)
	// The holder's client is named, for CLIENT KILL; the contender's has connections of its own,
	// which survive the kills. Both backends share the keys.
	locker := func(client *redis.Client) *Locker {
		b := redisstore.New(client, redisstore.WithKeyPrefix(prefix), redisstore.WithPollInterval(100*time.Millisecond))
		t.Cleanup(func() {
			b.Close()
			client.Close()
		})
		l, err := New(b, WithTTL(time.Second), WithRetry(time.Millisecond, 10*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	holder := locker(redis.NewClient(&redis.Options{Addr: addr, ClientName: name}))
	contender := locker(redis.NewClient(&redis.Options{Addr: addr}))

	for round := range 3 {
		var (
			holderCtx   atomic.Pointer[context.Context]
			holderLease atomic.Pointer[Lease]
			violation   atomic.Value
			kills       atomic.Int32
		)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		// The contender tries all the time; when it gets the lock, the holder's ctx must be done.
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				lease, err := contender.TryAcquire(t.Context(), "killed")
				if err != nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if p := holderCtx.Load(); p != nil && (*p).Err() == nil && time.Now().Before(holderLease.Load().localDeadline()) {
					violation.Store(fmt.Sprintf("round %d: the contender got token %v while the holder's fn ran", round, lease.Token()))
				}
				_ = lease.Release(context.Background())
			}
		})
		err := holder.WithLock(t.Context(), "killed", func(ctx context.Context, lease *Lease) error {
			holderLease.Store(lease)
			holderCtx.Store(&ctx)
			for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end) && ctx.Err() == nil; {
				kills.Add(int32(killClients(t, admin, name)))
				time.Sleep([]time.Duration{time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond}[round])
			}
			return nil
		})
		close(stop)
		wg.Wait()
		if v := violation.Load(); v != nil {
			t.Fatal(v)
		}
		if err != nil && !errors.Is(err, ErrLeaseLost) && !isNetErr(err) {
			t.Fatalf("round %d: WithLock: %v; want success, ErrLeaseLost or a connection error of the release", round, err)
		}
		t.Logf("round %d: %d connections killed; WithLock: %v", round, kills.Load(), err)
	}
}

// killClients kills the connections of the clients named name and returns how many.
func killClients(t *testing.T, admin *redis.Client, name string) int {
	list, err := admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	n := 0
	for line := range strings.SplitSeq(list, "\n") {
		if !strings.Contains(line, " name="+name+" ") {
			continue
		}
		for f := range strings.FieldsSeq(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				if admin.Do(context.Background(), "CLIENT", "KILL", "ID", id).Err() == nil {
					n++
				}
			}
		}
	}
	return n
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "connection reset")
}

// Tokens keep increasing across a restart of a Redis server without persistence: the lock's
// state is lost, and made anew under an epoch of the server's clock, later than the old one.
// The test starts a redis-server of its own.
func TestTokensAcrossRestart(t *testing.T) {
	if os.Getenv(redistest.EnvAddr) == "" {
		t.Skipf("set %s to run the real-server tests (this one starts a redis-server of its own)", redistest.EnvAddr)
	}
	srv := redistest.StartServer(t)
	addr := srv.Addr()

	client := redis.NewClient(&redis.Options{Addr: addr})
	b := redisstore.New(client)
	defer func() {
		b.Close()
		client.Close()
	}()
	l, err := New(b, WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	first := acquire(t, l, "restart")
	if err := first.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	held := acquire(t, l, "restart")
	srv.Restart()
	var after *Lease
	for i := 0; after == nil; i++ {
		var err error
		if after, err = l.TryAcquire(t.Context(), "restart"); err != nil && i == 100 {
			t.Fatalf("TryAcquire after the restart: %v", err)
		}
		time.Sleep(time.Duration(min(i, 1)) * 10 * time.Millisecond) // the client reconnects
	}
	if after.Token().Compare(held.Token()) <= 0 || held.Token().Compare(first.Token()) <= 0 || after.Token().Version != 1 {
		t.Fatalf("tokens %v, %v, then after the restart %v: want increasing, the last at version 1 of a new epoch",
			first.Token(), held.Token(), after.Token())
	}
	// The lease from before the restart is gone with the server's data.
	if err := held.Extend(t.Context()); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Extend of the lease from before the restart: %v, want ErrLeaseLost", err)
	}
}
