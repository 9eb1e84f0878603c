package memstore_test

import (
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/memstore"
	"github.com/ephemeral-go/ephemeral/runtime/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start is the fake clock's start: not a whole second, to catch millisecond truncation bugs.
var start = time.Date(2026, 1, 2, 3, 4, 5, 678_900_000, time.UTC)

func newHarness(t *testing.T) storetest.Harness {
	clock := memstore.NewFakeClock(start)
	b := memstore.New(memstore.WithClock(clock))
	t.Cleanup(func() { b.Close() })
	return storetest.Harness{
		Backend: b,
		Advance: func(_ testing.TB, d time.Duration) { clock.Advance(d) },
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newHarness)
}
