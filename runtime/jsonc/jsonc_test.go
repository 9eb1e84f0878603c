package jsonc_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/ephemeral-go/ephemeral/runtime/jsonc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func marshal(t *testing.T, v any) ([]byte, error) {
	t.Helper()
	return json.Marshal(v)
}

func checkFloat(t *testing.T, f float64, bits int) {
	t.Helper()
	var v any = f
	if bits == 32 {
		f = float64(float32(f))
		v = float32(f)
	}
	want, wantErr := marshal(t, v)
	got, gotErr := jsonc.AppendFloat([]byte("x"), f, bits)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("AppendFloat(%v, %d): error %v, json error %v", f, bits, gotErr, wantErr)
	}
	if wantErr == nil && string(got) != "x"+string(want) {
		t.Fatalf("AppendFloat(%v, %d) = %s, json %s", f, bits, got[1:], want)
	}
}

func TestAppendFloat(t *testing.T) {
	edges := []float64{0, math.Copysign(0, -1), 1, -1, 1e-6, 9.999999e-7, 1e-7, 1e20, 1e21, 9.999999999999999e20,
		math.MaxFloat64, math.SmallestNonzeroFloat64, math.MaxFloat32, math.SmallestNonzeroFloat32, 1e-9, 1.5e-10,
		123456789, 1.0 / 3, 100, 1e100, 1e-100, math.NaN(), math.Inf(1), math.Inf(-1), 0.000001, 0.0000001}
	for _, f := range edges {
		checkFloat(t, f, 64)
		checkFloat(t, f, 32)
		checkFloat(t, -f, 64)
		checkFloat(t, -f, 32)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 50000 {
		checkFloat(t, math.Float64frombits(r.Uint64()), 64)
		checkFloat(t, float64(math.Float32frombits(r.Uint32())), 32)
		checkFloat(t, r.NormFloat64()*math.Pow(10, float64(r.IntN(60)-30)), 64)
	}
}

func checkString(t *testing.T, s string) {
	t.Helper()
	want, _ := marshal(t, s)
	if got := jsonc.AppendString(nil, s); !bytes.Equal(got, want) {
		t.Fatalf("AppendString(%q) = %s, json %s", s, got, want)
	}
	var back string
	wantErr := json.Unmarshal(want, &back)
	var d jsonc.Decoder
	d.Reset(want)
	var got string
	d.String(&got)
	if err := d.Finish(); (err == nil) != (wantErr == nil) || got != back {
		t.Fatalf("decode %s = %q, %v; json %q, %v", want, got, err, back, wantErr)
	}
}

func TestAppendString(t *testing.T) {
	for b := range 256 {
		checkString(t, string([]byte{byte(b)}))
		checkString(t, "a"+string([]byte{byte(b)})+"bc")
	}
	for _, s := range []string{"", "plain", "<script>", "a&b", "\u2028\u2029", "é中😀", "\xed\xa0\x80",
		"\xf4\x90\x80\x80", "\xc3", "a\xc3(", "\xe2\x80", "\xe2\x80\xa8x", strings.Repeat("\x01", 40)} {
		checkString(t, s)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		b := make([]byte, r.IntN(20))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		checkString(t, string(b))
	}
}

// checkDecodeString decodes the JSON string literal doc with both decoders.
func checkDecodeString(t *testing.T, doc []byte) {
	t.Helper()
	var want string
	wantErr := json.Unmarshal(doc, &want)
	var d jsonc.Decoder
	d.Reset(doc)
	var got string
	d.String(&got)
	err := d.Finish()
	if (err == nil) != (wantErr == nil) || (err == nil && got != want) {
		t.Fatalf("decode %q = %q, %v; json %q, %v", doc, got, err, want, wantErr)
	}
}

func TestDecodeStringEscapes(t *testing.T) {
	for _, s := range []string{`"\ud83d\ude00"`, `"\ud83d"`, `"\ud83d\u0041"`, `"\ude00"`, `"\ud83d\ud83d\ude00"`,
		`"\u0000"`, `"\uD83D\uDE00"`, `"\/"`, `"\'"`, `"\a"`, `"\u12"`, `"\u"`, `"\`, `"`, `"a` + "\x7f\xff" + `"`,
		`"` + "\t" + `"`, ` "x" `, `"x"y`, `null`, `1`, `"\ud800\udc00\udbff\udfff"`} {
		checkDecodeString(t, []byte(s))
	}
}

// TestDecodeStringEveryByte puts every byte at every offset of the 8-byte blocks that the
// fast scan of strings reads, and checks both String and Skip against encoding/json.
func TestDecodeStringEveryByte(t *testing.T) {
	for c := range 256 {
		for i := range 18 {
			doc := []byte(`"` + strings.Repeat("a", i) + string(byte(c)) + strings.Repeat("b", 17-i) + `"`)
			checkDecodeString(t, doc)
			var d jsonc.Decoder
			d.Reset(doc)
			d.Skip()
			if err := d.Finish(); (err == nil) != json.Valid(doc) {
				t.Fatalf("Skip(%q): error %v, json.Valid %v", doc, err, json.Valid(doc))
			}
		}
	}
}

func TestEncoderTime(t *testing.T) {
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("", 0), time.FixedZone("", 5*3600+30*60),
		time.FixedZone("", -(23*3600 + 59*60 + 59)), time.FixedZone("", 24*3600), time.FixedZone("", 59),
		time.FixedZone("", -59), time.FixedZone("", -24*3600)}
	r := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		sec := r.Int64N(1<<38) - 1<<37
		tm := time.Unix(sec, r.Int64N(1e9)).In(zones[r.IntN(len(zones))])
		if r.IntN(3) == 0 {
			tm = tm.Truncate(time.Duration(r.Int64N(1e9)) + 1)
		}
		want, wantErr := json.Marshal(tm)
		var e jsonc.Encoder
		e.Reset(nil)
		e.Time(tm)
		got, err := e.Finish()
		if (err == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("Time(%v) = %s, %v; json %s, %v", tm, got, err, want, wantErr)
		}
	}
}

func TestEncoderJSON(t *testing.T) {
	for _, raw := range []string{`{}`, ` { "a" : [ 1 , 2 ] } `, "\"<\u2028&>\"", `"\u003c"`, `[1,]`, `{"a"}`, ``, ` `,
		`1 2`, `tru`, `"\x"`, "\"\xff\"", "[\n1\t,\r2]", `{"a":"b\"c"}`, `-0.5e+10`} {
		want, wantErr := json.Marshal(json.RawMessage(raw))
		var e jsonc.Encoder
		e.Reset([]byte("x"))
		e.JSON("json.RawMessage", []byte(raw), nil)
		got, err := e.Finish()
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("JSON(%q): error %v, json error %v", raw, err, wantErr)
		}
		if err == nil && string(got) != "x"+string(want) {
			t.Fatalf("JSON(%q) = %s, json %s", raw, got[1:], want)
		}
		if err != nil && string(got) != "x" {
			t.Fatalf("JSON(%q) failed but returned %q", raw, got)
		}
	}
}

func TestEncoderAllocs(t *testing.T) {
	buf := make([]byte, 0, 1024)
	tm := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("", 3600))
	allocs := testing.AllocsPerRun(100, func() {
		var e jsonc.Encoder
		e.Reset(buf[:0])
		e.String("a<b>")
		e.Float64(1.5e-7)
		e.Int(-12)
		e.Time(tm)
		e.Bytes([]byte("xyz"))
		if _, err := e.Finish(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations, want 0", allocs)
	}
}

func TestFoldedName(t *testing.T) {
	for _, pair := range [][2]string{{"name", "NAME"}, {"k", "\u212a"}, {"s", "ſ"}, {"ǅ", "ǆ"}, {"é", "É"}} {
		a := jsonc.AppendFoldedName(nil, []byte(pair[0]))
		b := jsonc.AppendFoldedName(nil, []byte(pair[1]))
		if !bytes.Equal(a, b) {
			t.Errorf("%q folds to %q, %q to %q", pair[0], a, pair[1], b)
		}
	}
	if a, b := jsonc.AppendFoldedName(nil, []byte("a")), jsonc.AppendFoldedName(nil, []byte("b")); bytes.Equal(a, b) {
		t.Errorf("a and b fold alike")
	}
}

func FuzzString(f *testing.F) {
	for _, s := range []string{"", "a<b>&c", "\u2028", "\xff\xed\xa0\x80", "\x00\x1f\"\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkString(t, s) })
}

func FuzzDecodeString(f *testing.F) {
	for _, s := range []string{`"a"`, `"\ud83d\ude00"`, `"\ud83d\u0041"`, "\"\xff\"", `"\u00zz"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if !utf8.Valid(doc) && len(doc) > 64 {
			return
		}
		checkDecodeString(t, doc)
	})
}

func FuzzFloat(f *testing.F) {
	for _, x := range []float64{0, 1e21, 1e-7, math.MaxFloat64, 5e-324, 3.4e38} {
		f.Add(math.Float64bits(x))
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		x := math.Float64frombits(bits)
		checkFloat(t, x, 64)
		checkFloat(t, float64(float32(x)), 32)
		checkFloat(t, float64(math.Float32frombits(uint32(bits))), 32)
	})
}

// FuzzSkip checks that the decoder accepts exactly the JSON values encoding/json accepts.
func FuzzSkip(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}]}`, `[1,]`, `{"a" 1}`, `-01`, `1e+`, `"\u"`, `[[[]]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var d jsonc.Decoder
		d.Reset(doc)
		d.Skip()
		err := d.Finish()
		if valid := json.Valid(doc); valid != (err == nil) {
			t.Fatalf("Skip(%q): error %v, json.Valid %v", doc, err, valid)
		}
	})
}

// checkTime decodes the JSON document raw into a time.Time with the decoder and with
// encoding/json.
func checkTime(t *testing.T, raw string) {
	t.Helper()
	var want time.Time
	wantErr := json.Unmarshal([]byte(raw), &want)
	var got time.Time
	var d jsonc.Decoder
	d.Reset([]byte(raw))
	jsonc.Unmarshal(&d, &got)
	err := d.Finish()
	if (err == nil) != (wantErr == nil) || (err == nil && !reflect.DeepEqual(got, want)) {
		t.Fatalf("decode time %s = %v, %v; json %v, %v", raw, got, err, want, wantErr)
	}
}

func TestDecodeTime(t *testing.T) {
	for _, s := range []string{`"2024-02-29T00:00:00Z"`, `"2023-02-29T00:00:00Z"`, `"1900-02-29T00:00:00Z"`,
		`"2000-02-29T23:59:59.999999999Z"`, `"2000-01-01T00:00:00.1234567891Z"`, `"2000-01-01T00:00:00.Z"`,
		`"2000-01-01T24:00:00Z"`, `"2000-01-01T00:60:00Z"`, `"2000-01-01T00:00:60Z"`, `"2000-13-01T00:00:00Z"`,
		`"2000-00-01T00:00:00Z"`, `"2000-01-00T00:00:00Z"`, `"2000-01-01t00:00:00Z"`, `"2000-01-01T00:00:00z"`,
		`"2000-01-01T00:00:00+01:00"`, `"2000-01-01T00:00:00,5Z"`, `"0000-01-01T00:00:00Z"`, `"+000-01-01T00:00:00Z"`,
		`"2000-01-01T00:00:00.5"`, `"2000-1-01T00:00:00Z"`, `null`, `"x"`, `"2000-01-01T00:00:00.000Z"`,
		`"2000-01-01T00:00:00.1234567:Z"`, `"2000-01-01T00:00:00.12345678?Z"`, `"2000-01-01T00:00:00.123456789Z"`,
		`"2000-01-01T00:00:00./2345678Z"`, `"2000-01-01T00:00:00.12345678Z"`, `"2000-01-01T00:00:00.1234567890Z"`} {
		checkTime(t, s)
	}
	r := rand.New(rand.NewPCG(7, 8))
	for range 20000 {
		const year0, year10000 = -62167219200, 253402300800 // Unix times of 0000-01-01 and 10000-01-01
		tm := time.Unix(year0+r.Int64N(year10000-year0), r.Int64N(1e9)).UTC()
		if r.IntN(2) == 0 {
			tm = tm.Truncate(time.Duration(r.Int64N(1e9)) + 1)
		}
		b, _ := tm.MarshalJSON()
		checkTime(t, string(b))
	}
}

func FuzzDecodeTime(f *testing.F) {
	f.Add(`"2024-02-29T12:34:56.789Z"`)
	f.Add(`"2024-02-30T12:34:56Z"`)
	f.Fuzz(func(t *testing.T, raw string) { checkTime(t, raw) })
}

// TestDecodeStringBlocks decodes arrays of strings of many sizes, which fill several blocks of
// shared memory or have their own, and compares them with encoding/json.
func TestDecodeStringBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		in := make([]string, r.IntN(200))
		for i := range in {
			in[i] = strings.Repeat(string(rune('a'+i%26)), r.IntN(1500)) + `\u00e9\n`[:r.IntN(2)*8]
		}
		doc := []byte(`["` + strings.Join(in, `","`) + `"]`)
		var want []string
		if err := json.Unmarshal(doc, &want); err != nil {
			t.Fatal(err)
		}
		var got []string
		var d jsonc.Decoder
		d.Reset(doc)
		if d.Array() {
			for d.NextElem() {
				got = append(got, "")
				d.String(&got[len(got)-1])
			}
		}
		if err := d.Finish(); err != nil || !slices.Equal(got, want) {
			t.Fatalf("decode %.100q: %v, equal %v", doc, err, slices.Equal(got, want))
		}
	}
}

// fold decodes the key of doc and returns what Fold matches it with.
func fold(f *jsonc.Fields, key string) string {
	var d jsonc.Decoder
	d.Reset([]byte(strconv.Quote(key) + ":"))
	return string(d.Fold(f, d.Key()))
}

// TestFold checks Decoder.Fold against a linear search, for tables small and large enough to
// use a map, with keys that are not names (which generated code matches first).
func TestFold(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("aAbBkK\u212aſsS_-é0")
	randomName := func() string {
		var b strings.Builder
		for range 1 + r.IntN(4) {
			b.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	for _, size := range []int{1, 2, 5, 11, 12, 40, 300} {
		var names []string
		seen := map[string]bool{}
		for len(names) < size {
			if n := randomName(); !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
		f := jsonc.NewFields(names...)
		for range 2000 {
			key := randomName()
			if seen[key] {
				continue
			}
			want := ""
			for _, n := range names {
				if bytes.Equal(jsonc.AppendFoldedName(nil, []byte(n)), jsonc.AppendFoldedName(nil, []byte(key))) {
					want = n
					break
				}
			}
			if got := fold(f, key); got != want {
				t.Fatalf("%d names: Fold(%q) = %q, want %q", size, key, got, want)
			}
		}
	}
	f := jsonc.NewFields("name", "NAME", "k")
	for key, want := range map[string]string{"Name": "name", "name": "", "K": "k", "\u212a": "k", "x": "", "": ""} {
		if got := fold(f, key); got != want {
			t.Errorf("Fold(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestDecodeFloat compares decoded float64 and float32 values, bit for bit, with
// encoding/json for numbers near the limits of the exact fast path and random ones.
func TestDecodeFloat(t *testing.T) {
	nums := []string{"0", "-0", "1", "-3", "0.5", "1e-7", "12345.678", "9007199254740992", "9007199254740993",
		"9007199254740992e22", "9007199254740993e22", "1e22", "1e23", "1e-22", "1e-23", "123456789012345678e-5",
		"1234567890123456789", "12345678901234567890", "0.0000000000000000000001", "1E+2", "1e+0", "0e1000",
		"1e-1000", "1e400", "-1e400", "4.9e-324", "1.7976931348623157e308", "0.1", "0.3", "100000000000000000000000"}
	r := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		n := strconv.FormatUint(r.Uint64N(1<<uint(r.IntN(64))), 10)
		if p := r.IntN(len(n) + 1); p < len(n) && r.IntN(2) == 0 {
			n = n[:p] + "." + n[p:]
			if p == 0 {
				n = "0" + n
			}
		}
		if r.IntN(2) == 0 {
			n += "e" + strconv.Itoa(r.IntN(60)-30)
		}
		if r.IntN(2) == 0 {
			n = "-" + n
		}
		nums = append(nums, n)
	}
	for _, n := range nums {
		var want64 float64
		var want32 float32
		err64, err32 := json.Unmarshal([]byte(n), &want64), json.Unmarshal([]byte(n), &want32)
		var got64 float64
		var got32 float32
		var d jsonc.Decoder
		d.Reset([]byte(n))
		d.Float64(&got64)
		e64 := d.Finish()
		d.Reset([]byte(n))
		d.Float32(&got32)
		e32 := d.Finish()
		if (e64 == nil) != (err64 == nil) || math.Float64bits(got64) != math.Float64bits(want64) {
			t.Errorf("Float64(%s) = %v, %v; json %v, %v", n, got64, e64, want64, err64)
		}
		if (e32 == nil) != (err32 == nil) || math.Float32bits(got32) != math.Float32bits(want32) {
			t.Errorf("Float32(%s) = %v, %v; json %v, %v", n, got32, e32, want32, err32)
		}
	}
}

// members reads the keys of the object doc with read, skipping the values.
func members(doc string, read func(*jsonc.Decoder) ([]byte, bool)) ([]string, error) {
	var d jsonc.Decoder
	d.Reset([]byte(doc))
	var keys []string
	if d.Object() {
		for k, ok := read(&d); ok; k, ok = read(&d) {
			keys = append(keys, string(k))
			d.Skip()
		}
	}
	return keys, d.Finish()
}

// TestMember checks that Member reads what NextMember and Key read, on compact and spaced
// objects, escaped keys and malformed input.
func TestMember(t *testing.T) {
	for _, doc := range []string{`{"a":1,"b":2}`, `{ "a" : 1 , "b":2 }`, "{\n\"a\":1,\t\"b\" :2}", `{"a":1 "b":2}`,
		`{,"a":1}`, `{"a":1,}`, `{"a":1,,"b":2}`, `{"\u0061":1,"b\n":2}`, `{"é":1,"ab\"c":2}`, `{"a"`, `{"a":`,
		`{"a"1}`, `{}`, `{ }`, `{"a":1,"b"`, `{"":1,"":2}`, `{"a":{"b":{}},"c":[{"d":1}]}`, `{"long key name":1}`,
		`{"a":1}x`, `{"a":1`, `{"a":1,`, `{"a":1,"`, `{"a":-,"b":2}`, `{"abcdefghijklmnop":1,"q":2}`, `{"a"` + ":1" + `,"x":"\u00e9"}`} {
		checkMember(t, doc)
		checkMember(t, doc+"                ") // the fast path reads 8 bytes at a time
	}
}

// checkMember compares the keys and the error that Member reads in doc with those that
// NextMember and Key read.
func checkMember(t *testing.T, doc string) {
	t.Helper()
	want, wantErr := members(doc, func(d *jsonc.Decoder) ([]byte, bool) {
		if !d.NextMember() {
			return nil, false
		}
		k := d.Key()
		return k, d.Err() == nil
	})
	got, err := members(doc, func(d *jsonc.Decoder) ([]byte, bool) {
		k := d.Member()
		return k, k != nil
	})
	if !slices.Equal(got, want) || fmt.Sprint(err) != fmt.Sprint(wantErr) {
		t.Errorf("%q: Member read %q, %v; NextMember and Key %q, %v", doc, got, err, want, wantErr)
	}
}

// checkInt decodes doc into a T with decode and with encoding/json.
func checkInt[T comparable](t *testing.T, doc string, decode func(*jsonc.Decoder, *T)) {
	t.Helper()
	var want, got T
	wantErr := json.Unmarshal([]byte(doc), &want)
	var d jsonc.Decoder
	d.Reset([]byte(doc))
	decode(&d, &got)
	if err := d.Finish(); (err == nil) != (wantErr == nil) || err == nil && got != want {
		t.Errorf("decode %q into %T = %v, %v; json %v, %v", doc, got, got, err, want, wantErr)
	}
}

// TestDecodeInt compares decoded integers of every size with encoding/json, around the limits
// of each type and of the compact path.
func TestDecodeInt(t *testing.T) {
	docs := []string{"0", "-0", "01", "-01", "1.0", "1e2", "1E2", "-", "--1", "1-", " 5", "5 ", "5,", "0x1", "+1",
		"127", "128", "-128", "-129", "255", "256", "32767", "32768", "65535", "65536", "2147483647", "2147483648",
		"-2147483648", "-2147483649", "4294967295", "4294967296", "999999999999999999", "1000000000000000000",
		"-999999999999999999", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"-9223372036854775809", "18446744073709551615", "18446744073709551616", "00", "1.", "null", `"1"`}
	r := rand.New(rand.NewPCG(9, 10))
	for range 2000 {
		docs = append(docs, strconv.FormatInt(r.Int64()>>r.IntN(64), 10))
	}
	for _, doc := range docs {
		checkInt(t, doc, (*jsonc.Decoder).Int)
		checkInt(t, doc, (*jsonc.Decoder).Int8)
		checkInt(t, doc, (*jsonc.Decoder).Int16)
		checkInt(t, doc, (*jsonc.Decoder).Int32)
		checkInt(t, doc, (*jsonc.Decoder).Int64)
		checkInt(t, doc, (*jsonc.Decoder).Uint)
		checkInt(t, doc, (*jsonc.Decoder).Uint8)
		checkInt(t, doc, (*jsonc.Decoder).Uint16)
		checkInt(t, doc, (*jsonc.Decoder).Uint32)
		checkInt(t, doc, (*jsonc.Decoder).Uint64)
		checkInt(t, doc, (*jsonc.Decoder).Uintptr)
	}
}

// TestDecodeIntKey checks integer map keys against encoding/json: the values, and the type an
// error names (Decoder.IntKey and UintKey take the bit size, 0 for int and uint).
func TestDecodeIntKey(t *testing.T) {
	for _, key := range []string{"0", "-1", "127", "128", "-129", "255", "256", "9223372036854775807",
		"9223372036854775808", "18446744073709551615", "18446744073709551616", "x", "1.5", "", " 1"} {
		doc := `{"` + key + `":1}`
		checkIntKey[int](t, doc, 0, false)
		checkIntKey[int8](t, doc, 8, false)
		checkIntKey[int64](t, doc, 64, false)
		checkIntKey[uint](t, doc, 0, true)
		checkIntKey[uint8](t, doc, 8, true)
		checkIntKey[uint64](t, doc, 64, true)
	}
}

func checkIntKey[K int | int8 | int64 | uint | uint8 | uint64](t *testing.T, doc string, bits int, unsigned bool) {
	t.Helper()
	var want map[K]int
	wantErr := json.Unmarshal([]byte(doc), &want)
	var d jsonc.Decoder
	d.Reset([]byte(doc))
	var k K
	if d.Object() && d.NextMember() {
		if unsigned {
			k = K(d.UintKey(bits))
		} else {
			k = K(d.IntKey(bits))
		}
	}
	err := d.Err()
	var wantTypeErr *json.UnmarshalTypeError
	switch {
	case (err == nil) != (wantErr == nil):
		t.Errorf("key of %s as %T: %v; json %v", doc, k, err, wantErr)
	case err == nil && want[k] != 1:
		t.Errorf("key of %s as %T = %v; json %v", doc, k, k, want)
	case err != nil && errors.As(wantErr, &wantTypeErr):
		var got *jsonc.UnmarshalTypeError
		if !errors.As(err, &got) || got.Type != wantTypeErr.Type.String() {
			t.Errorf("key of %s as %T: %v; json %v (type %v)", doc, k, err, wantErr, wantTypeErr.Type)
		}
	}
}

// TestMapPointer checks that MapPointer identifies a map as encoding/json does, by the pointer
// that reflect.Value.UnsafePointer returns, and that Enter finds a cycle by it.
func TestMapPointer(t *testing.T) {
	m, other := map[string]int{"a": 1}, map[string]int{"a": 1}
	if got, want := jsonc.MapPointer(m), reflect.ValueOf(m).UnsafePointer(); got != want {
		t.Fatalf("MapPointer = %p, reflect says %p", got, want)
	}
	type named map[string]int
	if jsonc.MapPointer(named(m)) != jsonc.MapPointer(m) || jsonc.MapPointer(m) == jsonc.MapPointer(other) {
		t.Fatal("MapPointer does not tell maps apart")
	}
	var e jsonc.Encoder
	for i := 0; ; i++ {
		p := jsonc.MapPointer(other)
		if i%2 == 0 {
			p = jsonc.MapPointer(m)
		}
		if !e.Enter(p, "map[string]int") {
			if i <= 1000 {
				t.Fatalf("cycle found at depth %d, before encoding/json finds one", i)
			}
			break
		}
	}
	if _, err := e.Finish(); err == nil || !strings.Contains(err.Error(), "encountered a cycle via map[string]int") {
		t.Fatalf("error %v, want a cycle", err)
	}
}
