package codectest

import (
	"encoding/json"
	"math"
	"net"
	"reflect"
	"strings"
	"time"
)

// source is the randomness a value is built from: a seeded generator or fuzz bytes.
type source interface {
	Uint64() uint64
}

// bytesSource reads randomness from fuzz input; it yields zeros when the input runs out.
type bytesSource struct{ b []byte }

func (s *bytesSource) Uint64() uint64 {
	var v uint64
	for i := 0; i < 8 && len(s.b) > 0; i++ {
		v = v<<8 | uint64(s.b[0])
		s.b = s.b[1:]
	}
	return v
}

// filler sets values of any type supported by the codecs to random, often awkward, contents.
type filler struct {
	src source
	// Only values that a round trip through the codecs keeps, for reflect.DeepEqual: no NaN,
	// and valid UTF-8.
	canonical bool
}

func (f *filler) n(k int) int { return int(f.src.Uint64() % uint64(k)) }

var specialStrings = []string{
	"", "a", "room-1", "<script>&amp;</script>", "\u2028\u2029", "\x00\x01\x1f\x7f", "\"\\/\b\f\n\r\t",
	"\xff\xfe", "a\xc3", "é中文😀", "\xed\xa0\x80", "ǅ", "K", "ſ", "NAME", "name",
}

var specialFloats = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 9.99999e-7, 1e-7, 1e20, 1e21, 123456789e13, math.MaxFloat64,
	math.SmallestNonzeroFloat64, math.MaxFloat32, math.SmallestNonzeroFloat32, 1.0 / 3, 1e-300, 5e-324,
}

var rawMessages = []string{`{}`, `[1, 2 ,3]`, ` "x<y" `, `null`, `{"a": [true, false, null, -1.5e3]}`, `"\u2028"`}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
	ipType   = reflect.TypeFor[net.IP]()
)

func (f *filler) string() string {
	s := f.anyString()
	if f.canonical {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

func (f *filler) anyString() string {
	if f.n(3) == 0 {
		return specialStrings[f.n(len(specialStrings))]
	}
	b := make([]byte, f.n(12))
	for i := range b {
		b[i] = byte(f.src.Uint64())
		if f.n(2) == 0 {
			b[i] = 'a' + byte(f.n(26))
		}
	}
	return string(b)
}

func (f *filler) float(bits int) float64 {
	switch f.n(4) {
	case 0:
		x := specialFloats[f.n(len(specialFloats))]
		if f.n(2) == 0 {
			x = -x
		}
		return x
	case 1:
		return float64(int64(f.src.Uint64())%2000-1000) / 8
	}
	x := math.Float64frombits(f.src.Uint64())
	if bits == 32 {
		x = float64(math.Float32frombits(uint32(f.src.Uint64())))
	}
	if (f.canonical || f.n(50) != 0) && (math.IsNaN(x) || math.IsInf(x, 0)) {
		x = 1.5 // an occasional NaN or Inf tests the error path
	}
	return x
}

func (f *filler) time() time.Time {
	sec := int64(f.src.Uint64()%(400*365*86400)) - 50*365*86400
	if f.n(40) == 0 {
		sec = int64(f.src.Uint64() % (1 << 40)) // sometimes beyond year 9999
	}
	t := time.Unix(sec, int64(f.n(1e9))).UTC()
	switch f.n(4) {
	case 0:
		t = t.In(time.FixedZone("", (f.n(48)-24)*1800))
	case 1:
		t = t.In(time.FixedZone("odd", f.n(100*3600))) // offsets of a day or more cannot be written
	}
	if f.n(5) == 0 {
		t = t.Truncate(time.Second)
	}
	return t
}

// fill sets v (settable) to a random value; depth bounds recursion.
func (f *filler) fill(v reflect.Value, depth int) {
	t := v.Type()
	switch {
	case t == timeType:
		v.Set(reflect.ValueOf(f.time()))
		return
	case t == rawType:
		if f.n(4) == 0 {
			v.SetZero()
			return
		}
		v.SetBytes([]byte(rawMessages[f.n(len(rawMessages))]))
		return
	case t == ipType: // of 16 bytes, which its text methods keep
		if f.n(4) == 0 {
			v.SetZero()
			return
		}
		ip := make(net.IP, net.IPv6len)
		for i := range ip {
			ip[i] = byte(f.src.Uint64())
		}
		if f.n(2) == 0 {
			ip = net.IPv4(ip[0], ip[1], ip[2], ip[3])
		}
		v.SetBytes(ip)
		return
	}
	switch t.Kind() {
	case reflect.Bool:
		v.SetBool(f.n(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := int64(f.src.Uint64())
		if f.n(2) == 0 {
			n = int64(f.n(2001) - 1000)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n := f.src.Uint64()
		if f.n(2) == 0 {
			n = uint64(f.n(1000))
		}
		v.SetUint(n)
	case reflect.Float32:
		v.SetFloat(f.float(32))
	case reflect.Float64:
		v.SetFloat(f.float(64))
	case reflect.String:
		v.SetString(f.string())
	case reflect.Pointer:
		if depth <= 0 || f.n(3) == 0 {
			v.SetZero()
			return
		}
		p := reflect.New(t.Elem())
		f.fill(p.Elem(), depth-1)
		v.Set(p)
	case reflect.Slice:
		if depth <= 0 || f.n(4) == 0 {
			v.SetZero()
			return
		}
		n := f.n(4)
		s := reflect.MakeSlice(t, n, n)
		for i := range n {
			f.fill(s.Index(i), depth-1)
		}
		v.Set(s)
	case reflect.Array:
		for i := range v.Len() {
			f.fill(v.Index(i), depth-1)
		}
	case reflect.Map:
		if depth <= 0 || f.n(4) == 0 {
			v.SetZero()
			return
		}
		m := reflect.MakeMap(t)
		for range f.n(4) {
			k := reflect.New(t.Key()).Elem()
			f.fill(k, depth-1)
			e := reflect.New(t.Elem()).Elem()
			f.fill(e, depth-1)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			if t.Field(i).IsExported() {
				f.fill(v.Field(i), depth-1)
			}
		}
	}
}
