// Command quickstart is ephemeral's first example: a presence store on the in-memory backend.
// It upserts, touches and removes entries, lets one expire, and prints the snapshots and the
// events it saw. Run it with
//
//	go run ./examples/quickstart
//
// The store's code is generated from the annotated Presence struct (presence.go) by
// go generate; see presence_ephemeral.go.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := memstore.New()
	defer b.Close()
	// With the system clock, time passes by itself: bob's 1s TTL runs out while the demo
	// waits for his expire event.
	if err := run(ctx, os.Stdout, b, func(time.Duration) {}); err != nil {
		log.Fatal(err)
	}
}

// run is the demo on backend b. elapse lets time pass; the test's fake clock advances.
func run(ctx context.Context, w io.Writer, b ephemeral.Backend, elapse func(time.Duration)) error {
	store, err := NewPresenceStore(b)
	if err != nil {
		return err
	}
	// A reader started before the writes sees all of them.
	events, err := store.Reader(ctx)
	if err != nil {
		return err
	}
	defer events.Close()

	for _, p := range []Presence{
		{Room: "lobby", UserID: "alice", Status: "online"},
		{Room: "lobby", UserID: "carol", Status: "online"},
		{Room: "kitchen", UserID: "dave", Status: "busy"},
	} {
		if _, err := store.Put(ctx, p); err != nil {
			return err
		}
	}
	// bob's entry lives for one second only.
	bob := Presence{Room: "lobby", UserID: "bob", Status: "away"}
	if _, err := store.Put(ctx, bob, ephemeral.WithTTL(time.Second)); err != nil {
		return err
	}
	if _, err := store.Touch(ctx, PresenceKey{Room: "lobby", UserID: "alice"}); err != nil {
		return err
	}
	if _, err := store.Remove(ctx, PresenceKey{Room: "lobby", UserID: "carol"}, ephemeral.WithReason("logged out")); err != nil {
		return err
	}
	if err := printSnapshot(ctx, w, store, "lobby"); err != nil {
		return err
	}

	fmt.Fprintln(w, "events:")
	elapse(time.Second)
	for {
		ev, err := events.Recv(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  v%d %-6s %s", ev.Version, ev.Kind, ev.Key)
		switch ev.Kind {
		case ephemeral.EventUpsert:
			fmt.Fprintf(w, " (%s)", ev.Value.Status)
		case ephemeral.EventDelete:
			fmt.Fprintf(w, " (%s)", ev.Reason)
		}
		fmt.Fprintln(w)
		if ev.Kind == ephemeral.EventExpire && ev.Key == bob.EphemeralKey() {
			break
		}
	}
	return printSnapshot(ctx, w, store, "lobby")
}

// printSnapshot prints the live entries of one room.
func printSnapshot(ctx context.Context, w io.Writer, store *PresenceStore, room string) error {
	snap, err := store.Snapshot(ctx, ephemeral.WithPrefix(PresenceKeyPrefix(room)))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "snapshot of %s:\n", room)
	for _, e := range snap.Entries {
		fmt.Fprintf(w, "  %s %s (v%d)\n", e.Key.UserID, e.Value.Status, e.Version)
	}
	return nil
}
