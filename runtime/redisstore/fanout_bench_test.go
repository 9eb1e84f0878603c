//go:build unix

package redisstore

import (
	"os"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/ephemeral-go/ephemeral/internal/fanout"
	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// BenchmarkFanout delivers one tenant's upserts to 1,000 and 10,000 typed readers, paced at
// 1,000/s and flat out, beside a bare channel fan-out (see internal/fanout), on miniredis in
// this process, and on the server of EPHEMERAL_REDIS_ADDR when it is set. b.N is the number
// of upserts; run it with a fixed count, such as
//
//	go test -run '^$' -bench Fanout -benchtime 2000x ./runtime/redisstore
//
// The CPU time per delivery is this process's: on miniredis it includes the server's work.
func BenchmarkFanout(b *testing.B) {
	for _, sz := range fanout.Sizes {
		b.Run(fanout.Name(sz.Readers, sz.Rate), func(b *testing.B) {
			b.Run("baseline=chan", func(b *testing.B) { fanout.Chan(b, sz.Readers, sz.Rate) })
			b.Run("miniredis", func(b *testing.B) {
				m := miniredis.RunT(b)
				f := newOn(b, redis.NewClient(&redis.Options{Addr: m.Addr()}), nil)
				fanout.Readers(b, f.b, sz.Readers, sz.Rate)
			})
			if os.Getenv(redistest.EnvAddr) != "" {
				b.Run("redis", func(b *testing.B) {
					fanout.Readers(b, newReal(b).b, sz.Readers, sz.Rate)
				})
			}
		})
	}
}
