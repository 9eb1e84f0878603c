package redisstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/redisstore"
	"github.com/redis/go-redis/v9"
)

// jsonCodec stands in for a codec that ephemeralgen generates.
type jsonCodec[T any] struct{}

func (jsonCodec[T]) Encode(dst []byte, v *T) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}

func (jsonCodec[T]) Decode(src []byte, v *T) error { return json.Unmarshal(src, v) }

// A backend on one Redis server, with a key prefix of its own. The backend holds one pub/sub
// connection for all its readers, of every store and tenant, besides the client's pool; close
// it before the client. A *redis.ClusterClient or a Sentinel failover client is used the same
// way.
func ExampleNew() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer client.Close()
	b := redisstore.New(client, redisstore.WithKeyPrefix("myapp"))
	defer b.Close()

	store, err := ephemeral.New(b, ephemeral.Config[string, string]{ID: "greetings", TTL: time.Minute, Codec: jsonCodec[string]{}})
	if err != nil {
		panic(err)
	}
	if _, err := store.Upsert(ctx, "hello", "world"); err != nil {
		fmt.Println("upsert:", err) // the server is down, say
		return
	}
	e, ok, err := store.Get(ctx, "hello")
	fmt.Println(e.Value, ok, err)
}
