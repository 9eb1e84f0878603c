package redisstore

import (
	"fmt"
	"testing"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// BenchmarkAttachMemos measures attachMemos on a whole snapshot of 10,000 unchanged entries, the
// cost it adds to every snapshot of the Redis backend.
//
//	go test -run '^$' -bench AttachMemos ./runtime/redisstore
func BenchmarkAttachMemos(b *testing.B) {
	st := &store{maxMemos: maxMemos}
	slot := st.slot("t")
	entries := make([]backend.Entry, 10_000)
	for i := range entries {
		entries[i] = backend.Entry{Key: fmt.Sprintf("user-%05d", i), Value: []byte("12345678"), Version: uint64(i + 1)}
	}
	st.attachMemos(slot, "e", entries, true)
	b.ResetTimer()
	for b.Loop() {
		st.attachMemos(slot, "e", entries, true)
	}
}
