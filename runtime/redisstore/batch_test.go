package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// applyBatch applies reqs as one batch, as concurrent upserts would be.
func applyBatch(st *store, tenant string, reqs ...backend.UpsertRequest) []*upsertCall {
	batch := make([]*upsertCall, len(reqs))
	for i, r := range reqs {
		batch[i] = &upsertCall{ctx: context.Background(), req: r, done: make(chan struct{})}
	}
	st.apply(tenant, batch)
	return batch
}

// One batch behaves as its upserts one after the other: the same key twice, conditions that
// see the batch's own writes, and capacity counted across the batch.
func TestBatchInOrderMiniredis(t *testing.T) {
	f := newMini(t)
	st, ten := f.open(t, backend.Limits{MaxEntries: 2}), "batch"
	req := func(key, value string, cond backend.CondKind) backend.UpsertRequest {
		return backend.UpsertRequest{Key: key, Value: []byte(value), TTL: time.Hour, Cond: backend.Condition{Kind: cond}}
	}
	calls := applyBatch(st, ten,
		req("a", "1", backend.CondIfNew),
		req("a", "2", backend.CondIfNew),    // conflict: a is live now
		req("a", "3", backend.CondIfExists), // version 2, CreatedAt of the first
		req("b", "1", backend.CondNone),
		req("c", "1", backend.CondNone), // capacity
	)
	want := []struct {
		version uint64
		err     error
	}{{1, nil}, {0, backend.ErrConflict}, {2, nil}, {3, nil}, {0, backend.ErrCapacity}}
	for i, c := range calls {
		if c.entry.Version != want[i].version || !errors.Is(c.err, want[i].err) {
			t.Errorf("upsert %d (%s): version %d, err %v; want %d, %v", i, c.req.Key, c.entry.Version, c.err, want[i].version, want[i].err)
		}
	}
	if calls[2].entry.CreatedAt != calls[0].entry.CreatedAt {
		t.Errorf("CreatedAt changed within the batch")
	}
	got, ok, err := st.Get(context.Background(), ten, "a")
	if err != nil || !ok || string(got.Value) != "3" || got.Version != 2 {
		t.Fatalf("get a: %+v %v %v", got, ok, err)
	}
}

func TestConcurrentUpsertsMiniredis(t *testing.T) { testConcurrentUpserts(t, newMini(t)) }
func TestConcurrentUpsertsRedis(t *testing.T)     { testConcurrentUpserts(t, newReal(t)) }
func TestConcurrentUpsertsCluster(t *testing.T)   { testConcurrentUpserts(t, newCluster(t)) }

// Concurrent upserts, batched or not, each get their own version, and readers see them all in
// version order.
func testConcurrentUpserts(t *testing.T, f fixture) {
	const writers, each = 16, 20
	st, ten := f.open(t, backend.Limits{}), "concurrent"
	sub := subscribe(t, st, ten, nil)
	versions := make(chan uint64, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				e, err := st.Upsert(context.Background(), ten, backend.UpsertRequest{Key: fmt.Sprint("k", (w+i)%5), Value: []byte("v"), TTL: time.Hour})
				if err != nil {
					t.Error(err)
					return
				}
				versions <- e.Version
			}
		})
	}
	wg.Wait()
	close(versions)
	seen := make(map[uint64]bool)
	for v := range versions {
		if seen[v] || v < 1 || v > writers*each {
			t.Fatalf("version %d returned twice or out of range", v)
		}
		seen[v] = true
	}
	expectVersions(t, sub, 1, writers*each)
}
