package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/internal/codectest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

// The benchmarks compare memstore with a baseline in the same run: a bare map of byte slices
// under a mutex, the least any in-memory store does. Run them with
//
//	go test -run '^$' -bench . -benchmem ./runtime/memstore
//
// Besides the wall time per operation they report cpu-ns/op, the CPU time the process used
// per operation (from getrusage, where there is one), which a busy machine disturbs less: a
// process that waits for a CPU uses none.

// measureCPU reports the process's CPU time per operation from now to the end of the
// benchmark: call it as defer measureCPU(b)() just before the loop.
func measureCPU(b *testing.B) func() {
	start, ok := processCPU()
	return func() {
		if end, _ := processCPU(); ok && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

const benchKeys = 1024

var benchKeyNames = func() []string {
	ks := make([]string, benchKeys)
	for i := range ks {
		ks[i] = "user:" + strconv.Itoa(i)
	}
	return ks
}()

// mapStore is the baseline. With withClock it also reads the clock, as a map whose entries
// expire must: that reading is the floor of memstore's cost above the bare map.
type mapStore struct {
	mu        sync.Mutex
	m         map[string][]byte
	withClock bool
	start     time.Time
	now       time.Duration
}

func newMapStore(withClock bool) *mapStore {
	return &mapStore{m: make(map[string][]byte), withClock: withClock, start: time.Now()}
}

func (s *mapStore) set(k string, v []byte) {
	s.mu.Lock()
	if s.withClock {
		s.now = time.Since(s.start)
	}
	s.m[k] = v
	s.mu.Unlock()
}

func (s *mapStore) get(k string) ([]byte, bool) {
	s.mu.Lock()
	if s.withClock {
		s.now = time.Since(s.start)
	}
	v, ok := s.m[k]
	s.mu.Unlock()
	return v, ok
}

// counter is the benchmarks' value type, with a tiny hand-written codec.
type counter struct{ N int }

type counterCodec struct{}

func (counterCodec) Encode(dst []byte, v *counter) ([]byte, error) {
	return strconv.AppendInt(dst, int64(v.N), 10), nil
}

func (counterCodec) Decode(src []byte, v *counter) error {
	n, err := strconv.Atoi(string(src))
	if err != nil {
		return errors.New("counter: not a number")
	}
	v.N = n
	return nil
}

var benchValue = []byte("12345678")

// newBenchStore returns a typed store on a new backend and the backend's store under it.
func newBenchStore(b *testing.B) (backend.Store, *ephemeral.Store[string, counter]) {
	be := memstore.New()
	b.Cleanup(func() { be.Close() })
	s, err := ephemeral.New(be, ephemeral.Config[string, counter]{ID: "bench", TTL: time.Hour, Codec: counterCodec{}})
	if err != nil {
		b.Fatal(err)
	}
	return open(be, "bench"), s
}

func BenchmarkUpsert(b *testing.B) {
	ctx := context.Background()
	for _, clock := range []bool{false, true} {
		b.Run(baselineName(clock), func(b *testing.B) {
			s := newMapStore(clock)
			i := 0
			defer measureCPU(b)()
			for b.Loop() {
				s.set(benchKeyNames[i%benchKeys], benchValue)
				i++
			}
		})
	}
	b.Run("backend", func(b *testing.B) {
		be, _ := newBenchStore(b)
		i := 0
		defer measureCPU(b)()
		for b.Loop() {
			req := backend.UpsertRequest{Key: benchKeyNames[i%benchKeys], Value: benchValue, TTL: time.Hour}
			if _, err := be.Upsert(ctx, ephemeral.DefaultTenant, req); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	// The same with a short event log: the default log of 50,000 events is 8 MB, written round
	// the ring, one event per upsert, so the write of every event misses the CPU's caches.
	b.Run("backend/events=1024", func(b *testing.B) {
		be := memstore.New()
		b.Cleanup(func() { be.Close() })
		s := open(be, "bench", backend.Limits{MaxEvents: 1024})
		i := 0
		defer measureCPU(b)()
		for b.Loop() {
			req := backend.UpsertRequest{Key: benchKeyNames[i%benchKeys], Value: benchValue, TTL: time.Hour}
			if _, err := s.Upsert(ctx, ephemeral.DefaultTenant, req); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("store", func(b *testing.B) {
		_, s := newBenchStore(b)
		i := 0
		defer measureCPU(b)()
		for b.Loop() {
			if _, err := s.Upsert(ctx, benchKeyNames[i%benchKeys], counter{N: i}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	for _, clock := range []bool{false, true} {
		b.Run(baselineName(clock), func(b *testing.B) {
			s := newMapStore(clock)
			for _, k := range benchKeyNames {
				s.set(k, benchValue)
			}
			i := 0
			defer measureCPU(b)()
			for b.Loop() {
				if _, ok := s.get(benchKeyNames[i%benchKeys]); !ok {
					b.Fatal("missing")
				}
				i++
			}
		})
	}
	b.Run("backend", func(b *testing.B) {
		be, s := newBenchStore(b)
		for _, k := range benchKeyNames {
			if _, err := s.Upsert(ctx, k, counter{N: 1}); err != nil {
				b.Fatal(err)
			}
		}
		i := 0
		defer measureCPU(b)()
		for b.Loop() {
			if _, ok, err := be.Get(ctx, ephemeral.DefaultTenant, benchKeyNames[i%benchKeys]); !ok || err != nil {
				b.Fatal("missing", err)
			}
			i++
		}
	})
	b.Run("store", func(b *testing.B) {
		_, s := newBenchStore(b)
		for _, k := range benchKeyNames {
			if _, err := s.Upsert(ctx, k, counter{N: 1}); err != nil {
				b.Fatal(err)
			}
		}
		i := 0
		defer measureCPU(b)()
		for b.Loop() {
			if _, ok, err := s.Get(ctx, benchKeyNames[i%benchKeys]); !ok || err != nil {
				b.Fatal("missing", err)
			}
			i++
		}
	})
}

func baselineName(clock bool) string {
	if clock {
		return "baseline=map+clock"
	}
	return "baseline=map"
}

// Clone makes the benchmarks' codec one that can deep-copy, as generated codecs can.
func (counterCodec) Clone(dst, src *counter) { *dst = *src }

// presenceCodec is codectest's generated codec of a presence value (strings, a time, a slice
// of strings); withoutClone hides its Clone method, so that a store decodes on every read.
type (
	presenceCodec = codectest.PresenceCodec
	withoutClone  struct{ presenceCodec }
)

func (c withoutClone) Clone() {} // shadows the Clone(dst, src) of the embedded codec

const snapshotSize = 10_000

// BenchmarkSnapshot10k takes snapshots of a tenant of 10,000 entries, beside two baselines: a
// map of as many byte slices under a mutex whose keys are sorted and copied out with their
// values, the old way of memstore, and the copy of 10,000 typed entries that are ready in key
// order into a new slice, the floor of a typed snapshot. The typed store reads values of two
// kinds: presence (strings, a time and a slice) and counter (flat), each with a codec that
// clones and with one that decodes (a flat value is copied by assignment with either), each
// into a new slice (Snapshot) and into a reused one (AppendSnapshot).
func BenchmarkSnapshot10k(b *testing.B) {
	ctx := context.Background()
	keys := make([]string, snapshotSize)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%05d", (i*7919)%snapshotSize) // not in key order
	}
	presence := codectest.Presence{Room: "lobby-42", UserID: "user-8f14e45f", Status: "online", Level: 3,
		Since: time.Date(2026, 11, 26, 6, 30, 15, 123456789, time.UTC), Tabs: []string{"chat", "settings"}}
	value, err := presenceCodec{}.Encode(nil, &presence)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("baseline=map+sort", func(b *testing.B) {
		s := newMapStore(false)
		for _, k := range keys {
			s.set(k, value)
		}
		type kv struct {
			k string
			v []byte
		}
		defer measureCPU(b)()
		for b.Loop() {
			s.mu.Lock()
			out := make([]kv, 0, len(s.m))
			for k, v := range s.m {
				out = append(out, kv{k, v})
			}
			s.mu.Unlock()
			slices.SortFunc(out, func(x, y kv) int { return strings.Compare(x.k, y.k) })
		}
	})
	b.Run("baseline=copy", func(b *testing.B) {
		// The floor of a typed snapshot: a new slice of 10,000 typed entries, copied from
		// entries that are ready, in key order.
		src := make([]ephemeral.Entry[string, codectest.Presence], len(keys))
		for i, k := range slices.Sorted(slices.Values(keys)) {
			src[i] = ephemeral.Entry[string, codectest.Presence]{Key: k, Value: presence, Version: uint64(i + 1),
				CreatedAt: presence.Since, UpdatedAt: presence.Since, ExpiresAt: presence.Since}
		}
		var mu sync.Mutex
		defer measureCPU(b)()
		for b.Loop() {
			mu.Lock()
			out := make([]ephemeral.Entry[string, codectest.Presence], len(src))
			copy(out, src)
			mu.Unlock()
		}
	})
	limits := ephemeral.Limits{MaxEntries: snapshotSize}
	b.Run("backend", func(b *testing.B) {
		be := memstore.New()
		defer be.Close()
		s := open(be, "bench", limits.WithDefaults())
		for _, k := range keys {
			if _, err := s.Upsert(ctx, "t", backend.UpsertRequest{Key: k, Value: value, TTL: time.Hour}); err != nil {
				b.Fatal(err)
			}
		}
		defer measureCPU(b)()
		for b.Loop() {
			if snap, err := s.Snapshot(ctx, "t", ""); err != nil || len(snap.Entries) != snapshotSize {
				b.Fatal(len(snap.Entries), err)
			}
		}
	})
	b.Run("store/presence/clone", func(b *testing.B) { benchStoreSnapshot(b, presenceCodec{}, presence, keys) })
	b.Run("store/presence/decode", func(b *testing.B) { benchStoreSnapshot(b, withoutClone{}, presence, keys) })
	b.Run("store/counter/clone", func(b *testing.B) { benchStoreSnapshot(b, counterCodec{}, counter{N: 12345678}, keys) })
	b.Run("store/counter/decode", func(b *testing.B) { benchStoreSnapshot(b, counterDecoder{}, counter{N: 12345678}, keys) })
}

// counterDecoder is counterCodec without Clone.
type counterDecoder struct{ counterCodec }

func (counterDecoder) Clone() {}

func benchStoreSnapshot[T any](b *testing.B, codec ephemeral.Codec[T], v T, keys []string) {
	ctx := context.Background()
	be := memstore.New()
	defer be.Close()
	s, err := ephemeral.New(be, ephemeral.Config[string, T]{ID: "bench", TTL: time.Hour, Codec: codec,
		Limits: ephemeral.Limits{MaxEntries: len(keys)}})
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range keys {
		if _, err := s.Upsert(ctx, k, v); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("new", func(b *testing.B) {
		defer measureCPU(b)()
		for b.Loop() {
			if snap, err := s.Snapshot(ctx); err != nil || len(snap.Entries) != len(keys) {
				b.Fatal(len(snap.Entries), err)
			}
		}
	})
	b.Run("reused", func(b *testing.B) {
		var buf []ephemeral.Entry[string, T]
		defer measureCPU(b)()
		for b.Loop() {
			snap, err := s.AppendSnapshot(ctx, buf[:0])
			if err != nil || len(snap.Entries) != len(keys) {
				b.Fatal(len(snap.Entries), err)
			}
			buf = snap.Entries
		}
	})
}
