package memstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

// jsonCodec stands in for a codec that ephemeralgen generates.
type jsonCodec[T any] struct{}

func (jsonCodec[T]) Encode(dst []byte, v *T) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}

func (jsonCodec[T]) Decode(src []byte, v *T) error { return json.Unmarshal(src, v) }

// A test moves a fake clock instead of sleeping: an entry expires, and its readers get the
// expire event, the moment the clock passes its TTL.
func ExampleNewFakeClock() {
	ctx := context.Background()
	clock := memstore.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b := memstore.New(memstore.WithClock(clock))
	defer b.Close()
	store, err := ephemeral.New(b, ephemeral.Config[string, string]{ID: "greetings", TTL: time.Minute, Codec: jsonCodec[string]{}})
	if err != nil {
		panic(err)
	}
	r, err := store.Reader(ctx)
	if err != nil {
		panic(err)
	}
	defer r.Close()

	e, _ := store.Upsert(ctx, "hello", "world")
	fmt.Println("expires at", e.ExpiresAt.Format(time.TimeOnly))
	clock.Advance(59 * time.Second)
	_, ok, _ := store.Get(ctx, "hello")
	fmt.Println("after 59s:", ok)
	clock.Advance(time.Second)
	_, ok, _ = store.Get(ctx, "hello")
	fmt.Println("after 60s:", ok)
	for range 2 {
		ev, _ := r.Recv(ctx)
		fmt.Println(ev.Kind, ev.Key)
	}
	// Output:
	// expires at 00:01:00
	// after 59s: true
	// after 60s: false
	// upsert hello
	// expire hello
}
