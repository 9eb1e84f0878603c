package ephemeral_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

// Presence is one user's presence in a room. In a program, it carries the annotation
//
//	//ephemeral:store id=presence ttl=30s key=Room,UserID
//
// and ephemeralgen generates the declarations that follow it here, written by hand for these
// examples: the key type with its string form and parser, the value's key, the codec, the
// store type and its constructor.
type Presence struct {
	Room   string `json:"room"`
	UserID string `json:"userId"`
	Status string `json:"status"`
}

// PresenceKey is the key of a Presence: its Room and UserID.
type PresenceKey struct{ Room, UserID string }

// String returns the key's string form, the key the backend stores: "lobby:alice".
func (k PresenceKey) String() string { return ephemeral.JoinKey(k.Room, k.UserID) }

// ParsePresenceKey parses the string form of a PresenceKey.
func ParsePresenceKey(s string) (PresenceKey, error) {
	p, err := ephemeral.SplitKey(s, 2)
	if err != nil {
		return PresenceKey{}, err
	}
	return PresenceKey{Room: p[0], UserID: p[1]}, nil
}

// EphemeralKey returns the key of p, for Put.
func (p Presence) EphemeralKey() PresenceKey { return PresenceKey{Room: p.Room, UserID: p.UserID} }

// PresenceCodec encodes a Presence as JSON. The generated codec writes the same bytes without
// reflection; encoding/json stands in for it here.
type PresenceCodec struct{}

func (PresenceCodec) Encode(dst []byte, v *Presence) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}

func (PresenceCodec) Decode(src []byte, v *Presence) error { return json.Unmarshal(src, v) }

// PresenceStore is the store of Presence values.
type PresenceStore = ephemeral.Store[PresenceKey, Presence]

// NewPresenceStore returns the store of Presence values on b; opts override the defaults of
// the annotation.
func NewPresenceStore(b ephemeral.Backend, opts ...ephemeral.StoreOption) (*PresenceStore, error) {
	return ephemeral.New(b, ephemeral.Config[PresenceKey, Presence]{
		ID:    "presence",
		TTL:   30 * time.Second,
		Codec: PresenceCodec{},
		Key:   ephemeral.KeyCodec[PresenceKey]{Format: PresenceKey.String, Parse: ParsePresenceKey},
		KeyOf: Presence.EphemeralKey,
	}, opts...)
}

// This example writes, reads and follows presence entries on the in-memory backend. Its fake
// clock makes the times the same on every run and lets the example move time forward; a
// program uses memstore.New() (or runtime/redisstore) and the system clock.
func ExampleStore() {
	ctx := context.Background()
	clock := memstore.NewFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	b := memstore.New(memstore.WithClock(clock))
	defer b.Close()
	store, err := NewPresenceStore(b)
	if err != nil {
		panic(err)
	}

	// A reader started before the writes receives all of them.
	events, err := store.Reader(ctx)
	if err != nil {
		panic(err)
	}
	defer events.Close()

	alice := PresenceKey{Room: "lobby", UserID: "alice"}
	bob := PresenceKey{Room: "lobby", UserID: "bob"}
	if _, err := store.Upsert(ctx, alice, Presence{Room: "lobby", UserID: "alice", Status: "online"}); err != nil {
		panic(err)
	}
	// bob's entry lives for 10 seconds instead of the store's 30.
	if _, err := store.Upsert(ctx, bob, Presence{Room: "lobby", UserID: "bob", Status: "away"}, ephemeral.WithTTL(10*time.Second)); err != nil {
		panic(err)
	}

	e, ok, err := store.Get(ctx, alice)
	if err != nil || !ok {
		panic(fmt.Sprint(ok, err))
	}
	fmt.Printf("get %s: %s, version %d, expires %s\n", e.Key, e.Value.Status, e.Version, e.ExpiresAt.Format(time.TimeOnly))

	// Ten seconds later bob's entry is gone; a touch keeps alice's alive for another 30.
	clock.Advance(10 * time.Second)
	if _, ok, _ := store.Get(ctx, bob); !ok {
		fmt.Println("get lobby:bob: gone")
	}
	res, err := store.Touch(ctx, alice)
	if err != nil {
		panic(err)
	}
	fmt.Printf("touch lobby:alice: version %d, expires %s\n", res.Version, res.ExpiresAt.Format(time.TimeOnly))

	// A snapshot holds every live entry, sorted by key, and the cursor to read on after.
	snap, err := store.Snapshot(ctx, ephemeral.WithPrefix(ephemeral.JoinKeyPrefix("lobby")))
	if err != nil {
		panic(err)
	}
	for _, e := range snap.Entries {
		fmt.Printf("snapshot %s: %s, created %s\n", e.Key, e.Value.Status, e.CreatedAt.Format(time.TimeOnly))
	}

	fmt.Println("events:")
	for range 4 {
		ev, err := events.Recv(ctx)
		if err != nil {
			panic(err)
		}
		fmt.Printf("  v%d %-6s %s at %s", ev.Version, ev.Kind, ev.Key.UserID, ev.At.Format(time.TimeOnly))
		if ev.Kind == ephemeral.EventUpsert {
			fmt.Printf(": %s", ev.Value.Status)
		}
		fmt.Println()
	}
	// Output:
	// get lobby:alice: online, version 1, expires 12:00:30
	// get lobby:bob: gone
	// touch lobby:alice: version 4, expires 12:00:40
	// snapshot lobby:alice: online, created 12:00:00
	// events:
	//   v1 upsert alice at 12:00:00: online
	//   v2 upsert bob at 12:00:00: away
	//   v3 expire bob at 12:00:10
	//   v4 touch  alice at 12:00:10
}

// This example keeps a replica of one room's presence in process: a mirror takes a snapshot,
// then follows the events after it, and reports every change with typed keys.
func ExampleStore_Mirror() {
	ctx := context.Background()
	b := memstore.New()
	defer b.Close()
	store, err := NewPresenceStore(b)
	if err != nil {
		panic(err)
	}
	for _, p := range []Presence{
		{Room: "lobby", UserID: "bob", Status: "away"},
		{Room: "kitchen", UserID: "dave", Status: "busy"},
	} {
		if _, err := store.Put(ctx, p); err != nil {
			panic(err)
		}
	}

	// The callback runs on the mirror's goroutine, in order, once the mirror's state holds the
	// change. Here it hands the changes over to be printed below.
	changes := make(chan ephemeral.Change[PresenceKey, Presence], 10)
	m, err := store.Mirror(func(c ephemeral.Change[PresenceKey, Presence]) { changes <- c },
		ephemeral.WithPrefix(ephemeral.JoinKeyPrefix("lobby")))
	if err != nil {
		panic(err)
	}
	defer m.Close()
	if err := m.Ready(ctx); err != nil { // the first snapshot is in
		panic(err)
	}

	if _, err := store.Put(ctx, Presence{Room: "lobby", UserID: "alice", Status: "online"}); err != nil {
		panic(err)
	}
	if _, err := store.Remove(ctx, PresenceKey{Room: "lobby", UserID: "bob"}, ephemeral.WithReason("left")); err != nil {
		panic(err)
	}
	for range 3 {
		c := <-changes
		fmt.Printf("%-7s %s: %s", c.Kind, c.Key.UserID, c.Entry.Value.Status)
		if c.Kind == ephemeral.ChangeRemoved {
			fmt.Printf(" (%s: %s)", c.Cause, c.Reason)
		}
		fmt.Println()
	}

	// The mirror answers reads from memory.
	for key, e := range m.All() {
		fmt.Printf("in the lobby: %s, %s\n", key.UserID, e.Value.Status)
	}
	if _, ok := m.Get(PresenceKey{Room: "kitchen", UserID: "dave"}); !ok {
		fmt.Println("dave is not in the lobby")
	}
	// Output:
	// added   bob: away
	// added   alice: online
	// removed bob: away (delete: left)
	// in the lobby: alice, online
	// dave is not in the lobby
}

// This example writes values at the keys they carry: Put takes the key from the value, by the
// store's Config.KeyOf (a generated store's EphemeralKey method).
func ExampleStore_Put() {
	ctx := context.Background()
	b := memstore.New()
	defer b.Close()
	store, err := NewPresenceStore(b)
	if err != nil {
		panic(err)
	}

	e, err := store.Put(ctx, Presence{Room: "lobby", UserID: "alice", Status: "online"})
	if err != nil {
		panic(err)
	}
	fmt.Printf("put room %s, user %s at key %q, version %d\n", e.Key.Room, e.Key.UserID, store.KeyString(e.Key), e.Version)

	// Put takes the options of Upsert: a condition, a TTL, a tenant.
	_, err = store.Put(ctx, Presence{Room: "lobby", UserID: "alice", Status: "away"}, ephemeral.IfNew())
	var conflict *ephemeral.ConflictError
	if errors.As(err, &conflict) {
		fmt.Printf("conflict: %s is live at version %d\n", conflict.Key, conflict.Version)
	}

	got, ok, err := store.Get(ctx, PresenceKey{Room: "lobby", UserID: "alice"})
	if err != nil || !ok {
		panic(fmt.Sprint(ok, err))
	}
	fmt.Println("get:", got.Value.Status)
	// Output:
	// put room lobby, user alice at key "lobby:alice", version 1
	// conflict: lobby:alice is live at version 1
	// get: online
}

// This example renews the entries of a room in one call, as a server renews the members whose
// pages hold a connection to it: quietly, so that readers see no event, each for the store's
// TTL from now. A key that is gone is reported, not renewed.
func ExampleStore_TouchMany() {
	ctx := context.Background()
	clock := memstore.NewFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	b := memstore.New(memstore.WithClock(clock))
	defer b.Close()
	store, err := NewPresenceStore(b)
	if err != nil {
		panic(err)
	}
	for _, user := range []string{"alice", "bob"} {
		if _, err := store.Put(ctx, Presence{Room: "lobby", UserID: user, Status: "online"}); err != nil {
			panic(err)
		}
	}

	clock.Advance(20 * time.Second)
	keys := []PresenceKey{{Room: "lobby", UserID: "alice"}, {Room: "lobby", UserID: "bob"}, {Room: "lobby", UserID: "carol"}}
	res, err := store.TouchMany(ctx, keys, ephemeral.Quiet())
	if err != nil {
		panic(err)
	}
	for i, r := range res {
		if !r.OK {
			fmt.Printf("%s: gone\n", keys[i].UserID)
			continue
		}
		fmt.Printf("%s: version %d, expires at %s\n", keys[i].UserID, r.Version, r.ExpiresAt.Format(time.TimeOnly))
	}
	// Output:
	// alice: version 1, expires at 12:00:50
	// bob: version 2, expires at 12:00:50
	// carol: gone
}

// This example updates an entry without losing a concurrent write: read it, then write on
// condition that its version is still the one read, and start over on a conflict.
func ExampleIfVersion() {
	ctx := context.Background()
	b := memstore.New()
	defer b.Close()
	store, err := NewPresenceStore(b)
	if err != nil {
		panic(err)
	}
	alice := Presence{Room: "lobby", UserID: "alice", Status: "online"}
	if _, err := store.Put(ctx, alice); err != nil {
		panic(err)
	}

	setStatus := func(key PresenceKey, status string) error {
		for {
			e, ok, err := store.Get(ctx, key)
			if err != nil || !ok {
				return fmt.Errorf("get %s: %v, %w", key, ok, err)
			}
			e.Value.Status = status
			_, err = store.Upsert(ctx, key, e.Value, ephemeral.IfVersion(e.Version))
			if !errors.Is(err, ephemeral.ErrConflict) {
				return err
			}
			// Someone else wrote the entry since the Get: read it again.
		}
	}
	if err := setStatus(alice.EphemeralKey(), "busy"); err != nil {
		panic(err)
	}
	e, _, _ := store.Get(ctx, alice.EphemeralKey())
	fmt.Println(e.Value.Status, e.Version)
	// Output:
	// busy 2
}

// This example sends the events that are ready together, as a server that writes them to a
// connection does to spare a flush per event: Recv waits for one, and TryRecv takes the others
// that are ready without waiting.
func ExampleReader_TryRecv() {
	ctx := context.Background()
	b := memstore.New()
	defer b.Close()
	store, err := NewPresenceStore(b)
	if err != nil {
		panic(err)
	}
	events, err := store.Reader(ctx)
	if err != nil {
		panic(err)
	}
	defer events.Close()
	for _, user := range []string{"alice", "bob", "carol"} {
		if _, err := store.Put(ctx, Presence{Room: "lobby", UserID: user, Status: "online"}); err != nil {
			panic(err)
		}
	}

	ev, err := events.Recv(ctx)
	var batch []string
	for ok := true; ok; ev, ok, err = events.TryRecv() {
		if err != nil {
			panic(err)
		}
		batch = append(batch, ev.Key.UserID)
	}
	fmt.Println("one write:", batch)
	// Output:
	// one write: [alice bob carol]
}
