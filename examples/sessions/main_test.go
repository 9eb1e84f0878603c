package main

import (
	"bytes"
	"context"
	"log"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ephemeral-go/ephemeral"
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

// TestWatchOverflow checks that the watcher says so when its reader fell behind the store's
// event retention: the events it missed (a logout here) are gone, and the log has a gap.
func TestWatchOverflow(t *testing.T) {
	backend := memstore.New(memstore.WithClock(memstore.NewFakeClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))))
	defer backend.Close()
	store, err := NewSessionStore(backend, ephemeral.WithLimits(ephemeral.Limits{MaxEvents: 2}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := store.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"ada", "bob", "carol"} {
		if _, err := store.Upsert(ctx, "s-"+user, Session{UserID: user}, ephemeral.IfNew()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Remove(ctx, "s-ada", ephemeral.WithReason("logout")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	ended := make(chan string, 8)
	done := make(chan error, 1)
	go func() { done <- watch(ctx, r, log.New(&out, "", 0), ended) }()
	if key := <-ended; key != "s-ada" { // the logout, the last event the store keeps
		t.Fatalf("ended %q, want s-ada", key)
	}
	r.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "are lost (the reader fell behind)") {
		t.Errorf("the watcher did not report the overflow; its log:\n%s", &out)
	}
}
