package main

import (
	"context"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The quickstart on a fake clock, which makes its output deterministic.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clock := memstore.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b := memstore.New(memstore.WithClock(clock))
	defer b.Close()
	if err := run(ctx, os.Stdout, b, clock.Advance); err != nil {
		panic(err)
	}
	// Output:
	// snapshot of lobby:
	//   alice online (v5)
	//   bob away (v4)
	// events:
	//   v1 upsert lobby:alice (online)
	//   v2 upsert lobby:carol (online)
	//   v3 upsert kitchen:dave (busy)
	//   v4 upsert lobby:bob (away)
	//   v5 touch  lobby:alice
	//   v6 delete lobby:carol (logged out)
	//   v7 expire lobby:bob
	// snapshot of lobby:
	//   alice online (v5)
}
