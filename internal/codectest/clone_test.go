package codectest

import (
	"bytes"
	"math"
	"math/rand/v2"
	"net"
	"reflect"
	"testing"
	"unsafe"

	"github.com/ephemeral-go/ephemeral"
)

// cloner is a generated codec, with the deep copy that the store detects.
type cloner[T any] interface {
	ephemeral.Codec[T]
	Clone(dst, src *T)
}

// checkClone clones a value that fill makes (fill makes the same value every time it is
// called) and requires the copy to be equal to it, by the codec and by reflect.DeepEqual, and
// to share no memory with it: changing everything reachable from one leaves the other as it was.
func checkClone[T any](t *testing.T, c cloner[T], fill func(*T)) {
	t.Helper()
	src, want := new(T), new(T)
	fill(src)
	fill(want)
	if !reflect.DeepEqual(src, want) {
		t.Fatalf("fill made unequal values:\n%+v\n%+v", src, want)
	}
	dst := new(T)
	(&filler{src: rand.New(rand.NewPCG(0, 0))}).fill(reflect.ValueOf(dst).Elem(), 4) // overwritten
	c.Clone(dst, src)
	checkEqual(t, c, dst, src)

	change(reflect.ValueOf(dst).Elem())
	if !reflect.DeepEqual(src, want) {
		t.Fatalf("changing the copy changed the original:\n%+v\nwant %+v", src, want)
	}
	c.Clone(dst, src)
	change(reflect.ValueOf(src).Elem())
	if !reflect.DeepEqual(dst, want) {
		t.Fatalf("changing the original changed the copy:\n%+v\nwant %+v", dst, want)
	}
}

// checkEqual requires dst to be equal to src: the same encoding (or both failing to encode),
// and reflect.DeepEqual.
func checkEqual[T any](t *testing.T, c ephemeral.Codec[T], dst, src *T) {
	t.Helper()
	got, gotErr := c.Encode(nil, dst)
	want, wantErr := c.Encode(nil, src)
	if !bytes.Equal(got, want) || (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("the copy encodes as %s (error %v), the original as %s (error %v)", got, gotErr, want, wantErr)
	}
	if !reflect.DeepEqual(dst, src) {
		t.Fatalf("copy %+v\nof    %+v", dst, src)
	}
}

// change changes in place everything reachable from v (addressable) that the codecs encode:
// numbers, strings, the elements of slices, arrays and maps (and the memory their keys point
// to), the sets of keys of maps, pointed-to values, and the members of structs. Memory that a
// copy shares with v changes with it.
func change(v reflect.Value) {
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(v.Uint() + 1)
	case reflect.Float32:
		v.SetFloat(float64(math.Nextafter32(float32(v.Float()), float32(math.Inf(1)))))
	case reflect.Float64:
		v.SetFloat(math.Nextafter(v.Float(), math.Inf(1)))
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Pointer:
		if !v.IsNil() {
			change(v.Elem())
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			change(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		t := v.Type()
		for _, k := range v.MapKeys() {
			e := reflect.New(t.Elem()).Elem()
			e.Set(v.MapIndex(k))
			change(e)
			v.SetMapIndex(k, e)
			k2 := reflect.New(t.Key()).Elem()
			k2.Set(k)
			change(k2) // the copy of the key shares what the key points to
		}
		if zero := reflect.Zero(t.Key()); v.MapIndex(zero).IsValid() {
			v.SetMapIndex(zero, reflect.Value{})
		} else {
			v.SetMapIndex(zero, reflect.Zero(t.Elem()))
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			if sf.Tag.Get("json") == "-" {
				continue
			}
			f := v.Field(i)
			if !sf.IsExported() {
				et := sf.Type
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if !sf.Anonymous || et.Kind() != reflect.Struct {
					continue // not encoded
				}
				// encoding/json reads the fields of an unexported embedded struct.
				f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
			}
			change(f)
		}
	}
}

// fillCanonical returns a function that fills a value from a generator seeded with seed, the
// same value every time, which a round trip through the codecs keeps.
func fillCanonical[T any](seed uint64) func(*T) {
	return func(v *T) {
		(&filler{src: rand.New(rand.NewPCG(seed, 3)), canonical: true}).fill(reflect.ValueOf(v).Elem(), 6)
	}
}

// cloneTest clones n random values of T.
func cloneTest[T any](c cloner[T], seed uint64, n int) func(t *testing.T) {
	return func(t *testing.T) {
		for i := range uint64(n) {
			checkClone(t, c, fillCanonical[T](seed*1000+i))
		}
	}
}

// TestClone clones random values of every type of the corpus but RefKeys (see TestCloneKeys).
func TestClone(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 30
	}
	t.Run("A1", cloneTest(A1Codec{}, 1, n))
	t.Run("A2", cloneTest(A2Codec{}, 2, n))
	t.Run("Color", cloneTest(ColorCodec{}, 3, n))
	t.Run("Conflicts", cloneTest(ConflictsCodec{}, 4, n))
	t.Run("Deeper", cloneTest(DeeperCodec{}, 5, n))
	t.Run("Document", cloneTest(DocumentCodec{}, 6, n))
	t.Run("Embedded", cloneTest(EmbeddedCodec{}, 7, n))
	t.Run("EmbeddedPtr", cloneTest(EmbeddedPtrCodec{}, 8, n))
	t.Run("Everything", cloneTest(EverythingCodec{}, 9, n))
	t.Run("Folded", cloneTest(FoldedCodec{}, 10, n))
	t.Run("Inner", cloneTest(InnerCodec{}, 11, n))
	t.Run("Item", cloneTest(ItemCodec{}, 12, n))
	t.Run("Meta", cloneTest(MetaCodec{}, 14, n))
	t.Run("Money", cloneTest(MoneyCodec{}, 15, n))
	t.Run("Node", cloneTest(NodeCodec{}, 16, n))
	t.Run("Outer", cloneTest(OuterCodec{}, 17, n))
	t.Run("Presence", cloneTest(PresenceCodec{}, 18, n))
	t.Run("Ref", cloneTest(RefCodec{}, 19, n))
	t.Run("Tagged", cloneTest(TaggedCodec{}, 24, n))
	t.Run("Refs", func(t *testing.T) {
		for i := range uint64(n) {
			checkClone(t, RefsCodec{}, func(v *Refs) {
				fillCanonical[Refs](20000 + i)(v)
				v.hidden = []int{int(i)}
			})
		}
	})
	t.Run("Tree", cloneTest(TreeCodec{}, 21, n))
	t.Run("WithMarshaler", cloneTest(WithMarshalerCodec{}, 22, n))
}

// TestCloneKeys clones a map whose keys hold pointers, which reflect.DeepEqual cannot compare
// across copies: the copy's keys have the same names, at other addresses.
func TestCloneKeys(t *testing.T) {
	a, b := "a", "b"
	src := RefKeys{ByRef: map[Ref]int{{Name: &a}: 1, {Name: &b}: 2}}
	var dst RefKeys
	RefKeysCodec{}.Clone(&dst, &src)
	want, err := RefKeysCodec{}.Encode(nil, &src)
	if got, _ := (RefKeysCodec{}).Encode(nil, &dst); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the copy encodes as %s, the original as %s (error %v)", got, want, err)
	}
	change(reflect.ValueOf(&dst).Elem())
	if a != "a" || b != "b" || len(src.ByRef) != 2 {
		t.Errorf("changing the copy changed the original: %q %q %v", a, b, src.ByRef)
	}
}

// TestCloneRoundTripError clones a value whose round trip fails, a net.IP of 3 bytes: it is
// copied by assignment.
func TestCloneRoundTripError(t *testing.T) {
	src := Refs{IP: net.IP{1, 2, 3}}
	var dst Refs
	RefsCodec{}.Clone(&dst, &src)
	if !reflect.DeepEqual(dst, src) || &dst.IP[0] != &src.IP[0] {
		t.Errorf("IP %v at %p, want %v at %p", dst.IP, dst.IP, src.IP, src.IP)
	}
}

// TestCloneFunc copies 1,000 random values with one function of CloneFunc, as a snapshot
// does, and requires each copy to be what Clone makes, and the copies to share no memory with
// the originals or with one another: changing everything reachable from a copy, and appending
// to its slices, leaves the originals and the other copies as they were.
func TestCloneFunc(t *testing.T) {
	t.Run("Presence", func(t *testing.T) {
		checkCloneFunc(t, PresenceCodec{}, func(v *Presence) { v.Tabs = append(v.Tabs, "appended") })
	})
	t.Run("Tagged", func(t *testing.T) {
		checkCloneFunc(t, TaggedCodec{}, func(v *Tagged) {
			v.Names, v.Raw, v.Scores = append(v.Names, "appended"), append(v.Raw, 1), append(v.Scores, 1)
		})
	})
}

// batchCloner is a generated codec with CloneFunc.
type batchCloner[T any] interface {
	cloner[T]
	ephemeral.BatchCloner[T]
}

func checkCloneFunc[T any](t *testing.T, c batchCloner[T], grow func(*T)) {
	const n = 1000
	srcs, wants, dsts := make([]*T, n), make([]*T, n), make([]*T, n)
	for i := range n {
		fill := fillCanonical[T](uint64(i))
		srcs[i], wants[i], dsts[i] = new(T), new(T), new(T)
		fill(srcs[i])
		fill(wants[i])
	}
	clone := c.CloneFunc()
	for i := range n {
		clone(dsts[i], srcs[i])
		checkEqual(t, c, dsts[i], srcs[i])
	}
	for i := 0; i < n; i += 2 { // the even copies; the odd ones share blocks with them
		change(reflect.ValueOf(dsts[i]).Elem())
		grow(dsts[i])
	}
	for i := range n {
		if !reflect.DeepEqual(srcs[i], wants[i]) {
			t.Fatalf("changing the copies changed original %d:\n%+v\nwant %+v", i, srcs[i], wants[i])
		}
		if i%2 == 1 && !reflect.DeepEqual(dsts[i], wants[i]) {
			t.Fatalf("changing the other copies changed copy %d:\n%+v\nwant %+v", i, dsts[i], wants[i])
		}
	}
}
