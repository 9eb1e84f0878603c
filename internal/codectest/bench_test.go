package codectest

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
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

// benchEverything returns a random Everything, the corpus's biggest type, that encodes.
func benchEverything() *Everything {
	for seed := uint64(0); ; seed++ {
		v := new(Everything)
		(&filler{src: rand.New(rand.NewPCG(seed, 4)), canonical: true}).fill(reflect.ValueOf(v).Elem(), 4)
		if _, err := (EverythingCodec{}).Encode(nil, v); err == nil {
			return v
		}
	}
}

// BenchmarkClone compares the deep copy with decoding the same value, in the same run: a flat
// struct (Meta, which Clone copies by assignment), the small and larger values of the other
// benchmarks, and the corpus's biggest type.
func BenchmarkClone(b *testing.B) {
	b.Run("Meta", func(b *testing.B) { benchClone(b, MetaCodec{}, benchDocument().Meta) })
	b.Run("Presence", func(b *testing.B) { benchClone(b, PresenceCodec{}, benchPresence()) })
	b.Run("Document", func(b *testing.B) { benchClone(b, DocumentCodec{}, benchDocument()) })
	b.Run("Everything", func(b *testing.B) { benchClone(b, EverythingCodec{}, benchEverything()) })
}

func benchClone[T any](b *testing.B, c cloner[T], v *T) {
	src, err := c.Encode(nil, v)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode", func(b *testing.B) { benchCodecDecode(b, c.Decode, src) })
	b.Run("clone", func(b *testing.B) {
		b.ReportAllocs()
		dst := new(T)
		for b.Loop() {
			c.Clone(dst, v)
		}
	})
}
