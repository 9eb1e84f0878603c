//go:build unix

package memstore_test

import (
	"testing"

	"github.com/ephemeral-go/ephemeral/internal/fanout"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

// BenchmarkFanout delivers one tenant's upserts to 1,000 and 10,000 typed readers, paced at
// 1,000/s and flat out, beside a bare channel fan-out (see internal/fanout). b.N is the number
// of upserts; run it with a fixed count, such as
//
//	go test -run '^$' -bench Fanout -benchtime 2000x ./runtime/memstore
func BenchmarkFanout(b *testing.B) {
	for _, sz := range fanout.Sizes {
		b.Run(fanout.Name(sz.Readers, sz.Rate), func(b *testing.B) {
			b.Run("baseline=chan", func(b *testing.B) { fanout.Chan(b, sz.Readers, sz.Rate) })
			b.Run("memstore", func(b *testing.B) {
				be := memstore.New()
				defer be.Close()
				fanout.Readers(b, be, sz.Readers, sz.Rate)
			})
		})
	}
}
