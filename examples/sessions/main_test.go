package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRun plays the scenario on a fake clock, so every time in its output is exact.
func TestRun(t *testing.T) {
	clock := memstore.NewFakeClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	backend := memstore.New(memstore.WithClock(clock))
	defer backend.Close()
	store, err := NewSessionStore(backend)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, store, &out, clock.Advance); err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	for _, want := range []string{
		"03:04:05.000  ada logs in: session s-ada, expires at 03:04:05.500",
		"mallory logs in with session s-ada: refused (ephemeral: condition failed",
		"03:04:05.000  reader: session s-carol deleted (logout)",
		"03:04:05.500  reader: session s-bob expired",
		"ada's request 5: session s-ada now expires at 03:04:06.500",
		"03:04:06.500  reader: session s-ada expired",
		"ada's next request: session s-ada is gone",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", &out)
	}
}
