package memstore_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

// The benchmarks compare memstore with a baseline in the same run: a bare map of byte slices
// under a mutex, the least any in-memory store does. Run them with
//
//	go test -run '^$' -bench . -benchmem ./runtime/memstore

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
			for b.Loop() {
				s.set(benchKeyNames[i%benchKeys], benchValue)
				i++
			}
		})
	}
	b.Run("backend", func(b *testing.B) {
		be, _ := newBenchStore(b)
		i := 0
		for b.Loop() {
			req := backend.UpsertRequest{Key: benchKeyNames[i%benchKeys], Value: benchValue, TTL: time.Hour}
			if _, err := be.Upsert(ctx, ephemeral.DefaultTenant, req); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("store", func(b *testing.B) {
		_, s := newBenchStore(b)
		i := 0
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
