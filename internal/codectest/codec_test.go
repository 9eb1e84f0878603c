package codectest

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"

	"go.uber.org/goleak"

	"github.com/ephemeral-go/ephemeral"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The generated codecs satisfy ephemeral.Codec.
var (
	_ ephemeral.Codec[Presence]   = PresenceCodec{}
	_ ephemeral.Codec[Everything] = EverythingCodec{}
)

// checkEncode compares the codec's encoding of v with json.Marshal(v) (v is a pointer, so
// that pointer-receiver methods apply as they do for the codec).
func checkEncode[T any](t *testing.T, c ephemeral.Codec[T], v *T) []byte {
	t.Helper()
	want, wantErr := json.Marshal(v)
	prefix := []byte("prefix")
	got, gotErr := c.Encode(prefix[:len(prefix):len(prefix)], v)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("encode %+v:\njson  error %v\ncodec error %v (output %s)", v, wantErr, gotErr, got)
	}
	if wantErr != nil {
		if !bytes.Equal(got, prefix) {
			t.Fatalf("failed encode changed the buffer: %q", got)
		}
		return nil
	}
	if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want) {
		t.Fatalf("encode %+v:\njson  %s\ncodec %s", v, want, got[len(prefix):])
	}
	return want
}

// checkDecode decodes src with json.Unmarshal and the codec, each into a copy of start, and
// requires the same success and, on success, equal values.
func checkDecode[T any](t *testing.T, c ephemeral.Codec[T], src []byte, start func() *T) {
	t.Helper()
	want, got := start(), start()
	wantErr := json.Unmarshal(src, want)
	gotErr := c.Decode(src, got)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("decode %q:\njson  error %v\ncodec error %v", src, wantErr, gotErr)
	}
	if wantErr == nil && !reflect.DeepEqual(want, got) {
		t.Fatalf("decode %q:\njson  %+v\ncodec %+v", src, want, got)
	}
}

func zero[T any]() *T { return new(T) }

// mutate returns a copy of doc with a few random edits that keep it close to JSON.
func mutate(r *rand.Rand, doc []byte) []byte {
	const alphabet = "{}[]\",:0123456789.-+eEtrufalsn \\u\t\nxAz\xff"
	b := bytes.Clone(doc)
	for range 1 + r.IntN(3) {
		if len(b) == 0 {
			return append(b, alphabet[r.IntN(len(alphabet))])
		}
		i := r.IntN(len(b))
		switch r.IntN(4) {
		case 0:
			b[i] = alphabet[r.IntN(len(alphabet))]
		case 1:
			b = append(b[:i], b[i+1:]...)
		case 2:
			b = append(b[:i], append([]byte{alphabet[r.IntN(len(alphabet))]}, b[i:]...)...)
		case 3:
			j := r.IntN(len(b))
			b = append(b[:i:i], b[min(i, j):]...) // duplicate a stretch
		}
	}
	return b
}

// differential encodes n random values of T with both encoders and decodes the results, and
// mutations of them, with both decoders.
func differential[T any](t *testing.T, c ephemeral.Codec[T], seed uint64, n int) {
	r := rand.New(rand.NewPCG(seed, 1))
	f := &filler{src: r}
	for range n {
		v := new(T)
		f.fill(reflect.ValueOf(v).Elem(), 6)
		doc := checkEncode(t, c, v)
		if doc == nil {
			continue
		}
		checkDecode(t, c, doc, zero[T])
		checkDecode(t, c, doc, func() *T { // into a filled value: merging rules
			p := new(T)
			(&filler{src: rand.New(rand.NewPCG(seed, 2))}).fill(reflect.ValueOf(p).Elem(), 4)
			return p
		})
		for range 10 {
			checkDecode(t, c, mutate(r, doc), zero[T])
		}
	}
}

func TestDifferential(t *testing.T) {
	n := 400
	if testing.Short() {
		n = 50
	}
	t.Run("Presence", func(t *testing.T) { differential(t, PresenceCodec{}, 1, n) })
	t.Run("Document", func(t *testing.T) { differential(t, DocumentCodec{}, 2, n) })
	t.Run("Everything", func(t *testing.T) { differential(t, EverythingCodec{}, 3, n) })
	t.Run("Conflicts", func(t *testing.T) { differential(t, ConflictsCodec{}, 4, n) })
	t.Run("Node", func(t *testing.T) { differential(t, NodeCodec{}, 5, n) })
	t.Run("Tree", func(t *testing.T) { differential(t, TreeCodec{}, 6, n) })
	t.Run("Folded", func(t *testing.T) { differential(t, FoldedCodec{}, 7, n) })
	t.Run("WithMarshaler", func(t *testing.T) { differential(t, WithMarshalerCodec{}, 8, n) })
	t.Run("Refs", func(t *testing.T) { differential(t, RefsCodec{}, 10, n) })
}
