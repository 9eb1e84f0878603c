package codectest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/internal/codectest/other"
)

func benchPresence() *Presence {
	return &Presence{
		Room: "lobby-42", UserID: "user-8f14e45f", Status: "online", Level: 3,
		Since: time.Date(2026, 11, 26, 6, 30, 15, 123456789, time.UTC),
		Tabs:  []string{"chat", "settings"},
	}
}

func benchDocument() *Document {
	p := *benchPresence()
	return &Document{
		ID: "doc-1", Owner: p, Members: []Presence{p, p, p},
		Items:  []other.Item{{ID: 1, Name: "a", Tags: []string{"x", "y"}}, {ID: 2, Tags: []string{}}},
		Scores: []float64{0.5, 1e-7, 12345.678, -3}, Revision: 77,
		Meta: &Meta{Created: p.Since, TTL: 30 * time.Second, Note: "a <note>", Flags: [3]bool{true, false, true}},
	}
}

// BenchmarkEncode compares the generated encoders with json.Marshal in the same run.
func BenchmarkEncode(b *testing.B) {
	b.Run("Presence/json", func(b *testing.B) { benchJSONEncode(b, benchPresence()) })
	b.Run("Presence/codec", func(b *testing.B) { benchCodecEncode(b, PresenceCodec{}.Encode, benchPresence()) })
	b.Run("Document/json", func(b *testing.B) { benchJSONEncode(b, benchDocument()) })
	b.Run("Document/codec", func(b *testing.B) { benchCodecEncode(b, DocumentCodec{}.Encode, benchDocument()) })
}

// BenchmarkDecode compares the generated decoders with json.Unmarshal in the same run; both
// decode into a zero value each time.
func BenchmarkDecode(b *testing.B) {
	p, _ := json.Marshal(benchPresence())
	d, _ := json.Marshal(benchDocument())
	b.Run("Presence/json", func(b *testing.B) { benchJSONDecode[Presence](b, p) })
	b.Run("Presence/codec", func(b *testing.B) { benchCodecDecode(b, PresenceCodec{}.Decode, p) })
	b.Run("Document/json", func(b *testing.B) { benchJSONDecode[Document](b, d) })
	b.Run("Document/codec", func(b *testing.B) { benchCodecDecode(b, DocumentCodec{}.Decode, d) })
}

func benchJSONEncode[T any](b *testing.B, v *T) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}

func benchCodecEncode[T any](b *testing.B, encode func([]byte, *T) ([]byte, error), v *T) {
	b.ReportAllocs()
	buf := make([]byte, 0, 4096)
	for b.Loop() {
		var err error
		if buf, err = encode(buf[:0], v); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func benchJSONDecode[T any](b *testing.B, src []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		var v T
		if err := json.Unmarshal(src, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func benchCodecDecode[T any](b *testing.B, decode func([]byte, *T) error, src []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		var v T
		if err := decode(src, &v); err != nil {
			b.Fatal(err)
		}
	}
}
