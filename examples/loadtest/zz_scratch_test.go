package main

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	ephemeral "github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/redisstore"
	"github.com/redis/go-redis/v9"
)

func BenchmarkScratchSnap(b *testing.B) {
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: os.Getenv("SNAP_ADDR")})
	be := redisstore.New(c)
	st, err := NewSampleStore(be, ephemeral.WithDefaultTenant("scratch"), ephemeral.WithLimits(ephemeral.Limits{MaxEntries: 10000}))
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		if _, err := st.Upsert(ctx, fmt.Sprintf("k-%07d", i), Sample{Seq: i, Status: "online"}, ephemeral.WithTTL(10*time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	hk := hashKey(c)
	b.Run("hgetall", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if len(c.HGetAll(ctx, hk).Val()) < 10000 {
				b.Fatal("short")
			}
		}
	})
	b.Run("typed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s, err := st.Snapshot(ctx)
			if err != nil || len(s.Entries) != 10000 {
				b.Fatal(err)
			}
		}
	})
}

func hashKey(c *redis.Client) string {
	keys, _ := c.Keys(context.Background(), "*scratch*").Result()
	for _, k := range keys {
		if t, _ := c.Type(context.Background(), k).Result(); t == "hash" {
			return k
		}
	}
	return ""
}
