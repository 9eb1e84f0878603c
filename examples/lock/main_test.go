package main

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The demo on a fake clock: the paused worker's lease runs out when the clock is advanced.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	clock := memstore.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b := memstore.New(memstore.WithClock(clock))
	defer b.Close()
	if err := run(ctx, os.Stdout, b, clock.Advance); err != nil {
		panic(err)
	}
	// Output:
	// balance after 4 workers: 40
	// slow holds the lock
	// fast wrote 100 with a later token: true
	// slow's write is fenced: true
	// slow's extend fails: true
	// slow's release frees nothing: true
	// balance: 140
}

// The demo on the system clock, as main runs it.
func TestRealClock(t *testing.T) {
	b := memstore.New()
	defer b.Close()
	if err := run(t.Context(), io.Discard, b, time.Sleep); err != nil {
		t.Fatal(err)
	}
}
