package jsonc_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/ephemeral-go/ephemeral/runtime/jsonc"
)

// foldField is a struct field that reports each member that encoding/json decodes into it,
// whose value is the code point of its key, to foldLog.
type foldField int

var foldLog func(f *foldField, key rune)

func (f *foldField) UnmarshalJSON(b []byte) error {
	n, err := strconv.Atoi(string(b))
	foldLog(f, rune(n))
	return err
}

// appendQuoted appends the JSON string of the one rune r.
func appendQuoted(b []byte, r rune) []byte {
	if r < 0x20 || r == '"' || r == '\\' {
		return fmt.Appendf(b, `"\u%04x"`, r)
	}
	return append(utf8.AppendRune(append(b, '"'), r), '"')
}

// TestFoldUnicode checks that a key of any one code point matches, by Decoder.Fold, the field
// name that it matches in encoding/json, or none when it matches none there: the names are one
// of each set of runes that unicode.SimpleFold makes equal (such as K, k and the Kelvin sign)
// that a name can hold (a letter or a digit), and the keys every code point, such as the
// dotless ı, which matches no name.
func TestFoldUnicode(t *testing.T) {
	var names []string
	for r := range rune(unicode.MaxRune + 1) {
		// The orbit of r, once: from its smallest rune, if it has more than one.
		smallest, name := true, rune(-1) // name: the largest letter or digit, for a valid tag
		for s := unicode.SimpleFold(r); s != r; s = unicode.SimpleFold(s) {
			smallest = smallest && s > r
			if unicode.IsLetter(s) || unicode.IsDigit(s) {
				name = max(name, s)
			}
		}
		if !smallest || unicode.SimpleFold(r) == r {
			continue
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			name = max(name, r)
		}
		if name < 0 {
			continue // such as the Roman numerals: no field name has them
		}
		names = append(names, string(name))
	}
	fields := make([]reflect.StructField, len(names))
	index := map[string]int{}
	for i, n := range names {
		fields[i] = reflect.StructField{Name: fmt.Sprintf("F%d", i), Type: reflect.TypeFor[foldField](), Tag: reflect.StructTag(`json:"` + n + `"`)}
		index[n] = i
	}
	v := reflect.New(reflect.StructOf(fields)).Elem()
	owner := map[*foldField]int{}
	for i := range names {
		owner[v.Field(i).Addr().Interface().(*foldField)] = i
	}

	// One document with a member per code point: encoding/json decodes each into the field it
	// matches, which reports it.
	doc := []byte{'{'}
	for r := range rune(unicode.MaxRune + 1) {
		if utf8.ValidRune(r) {
			doc = appendQuoted(doc, r)
			doc = strconv.AppendInt(append(doc, ':'), int64(r), 10)
			doc = append(doc, ',')
		}
	}
	doc[len(doc)-1] = '}'
	want := map[rune]int{}
	foldLog = func(f *foldField, key rune) {
		if _, ok := want[key]; ok {
			t.Fatalf("%U decoded twice", key)
		}
		want[key] = owner[f]
	}
	defer func() { foldLog = nil }()
	if err := json.Unmarshal(doc, v.Addr().Interface()); err != nil {
		t.Fatal(err)
	}
	if len(want) < 2*len(names) {
		t.Fatalf("encoding/json matched %d keys to %d names", len(want), len(names))
	}

	f := jsonc.NewFields(names...)
	var d jsonc.Decoder
	var src []byte
	for r := range rune(unicode.MaxRune + 1) {
		if !utf8.ValidRune(r) {
			continue
		}
		got, ok := index[string(r)] // the exact match, which generated code finds first
		if !ok {
			src = append(appendQuoted(src[:0], r), ':')
			d.Reset(src)
			got, ok = index[string(d.Fold(f, d.Key()))]
		}
		if w, wok := want[r]; ok != wok || ok && got != w {
			gotName, wantName := "none", "none"
			if ok {
				gotName = names[got]
			}
			if wok {
				wantName = names[w]
			}
			t.Errorf("key %q (%U) matches %s, encoding/json %s", string(r), r, gotName, wantName)
		}
	}
}
