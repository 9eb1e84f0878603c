package codectest

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// decodeCases are documents whose handling by encoding/json is easy to get wrong.
var decodeCases = []string{
	// Names: exact match first, then case folding, first field wins; unknown fields skipped.
	`{"NAME":"a","name":"b"}`, `{"Name":"a"}`, `{"nAmE":"a","NAME":"b"}`, `{"K":"kelvin"}`, `{"\u212a":"k"}`,
	`{"S":"long s"}`, `{"ſ":"x"}`, `{"unknown":{"a":[1,{"b":null}]},"name":"x"}`,
	`{"ı":1}`, `{"İ":1}`, `{"ıtem":{"name":"dotless i"}}`, // fold with no other rune, unlike their upper or lower case
	`{"n\u0061me":"escaped key"}`,
	// null: no-op for values, nil for pointers, slices and maps.
	`{"room":null,"tabs":null,"since":null,"level":null}`,
	`{"P":null,"Ints":null,"M":null,"Item":null,"ItemP":null,"Money":null,"MoneyP":null,"Temp":null,"Color":null,"ColorP":null,"Word":null,"Raw":null,"Bytes":null,"Arr":null}`,
	// Numbers: range checks, no fractions or exponents into integers.
	`{"I8":127}`, `{"I8":128}`, `{"I8":-129}`, `{"U8":-1}`, `{"U":-0}`, `{"I":-0}`, `{"I":1.0}`, `{"I":1e2}`,
	`{"U64":18446744073709551615}`, `{"U64":18446744073709551616}`, `{"I64":-9223372036854775808}`,
	`{"F32":3.5e38}`, `{"F32":1e-50}`, `{"F64":1e400}`, `{"F64":-0.0}`, `{"F64":01}`, `{"F64":1.}`, `{"F64":.5}`,
	`{"F64":-}`, `{"F64":1e}`, `{"F64":1E+2}`, `{"Dur":1000000000}`,
	// Type mismatches.
	`{"I":"1"}`, `{"S":1}`, `{"B":"true"}`, `{"Ints":{}}`, `{"M":[]}`, `{"Item":[]}`, `{"Arr":{}}`, `{"Color":1}`,
	`{"Color":{}}`, `{"Word":["x"]}`, `{"Bytes":1}`, `{"Time":1}`, `{"Time":"yesterday"}`,
	// Strings: escapes, surrogates, invalid UTF-8, control characters.
	`{"S":"\ud83d\ude00"}`, `{"S":"\ud83d"}`, `{"S":"\ud83dx"}`, `{"S":"\ud83d\u0041"}`, `{"S":"\ude00\ud83d"}`,
	`{"S":"\u00e9\/\b\f\n\r\t\"\\"}`, "{\"S\":\"\xff\xfe\"}", "{\"S\":\"a\x01\"}", `{"S":"\x"}`, `{"S":"\u12"}`,
	`{"S":"\u12G4"}`, `{"S":"\'"}`, "{\"S\":\"\xed\xa0\x80\"}",
	// The string option.
	`{"qi":"12","qb":"false","qf":"-1.5","qs":"\"x\"","qp":"7","qu":"255","qst":"\"on\""}`,
	`{"qi":12}`, `{"qi":"x"}`, `{"qi":""}`, `{"qi":" 1"}`, `{"qi":"1 "}`, `{"qi":"01"}`, `{"qi":"+1"}`,
	`{"qi":"null"}`, `{"qi":null}`, `{"qp":"null"}`, `{"qp":null}`, `{"qp":"nul"}`, `{"qb":"true "}`,
	`{"qb":"null"}`, `{"qf":"0x1p3"}`, `{"qf":"-Inf"}`, `{"qf":"1_0"}`, `{"qf":"1e400"}`, `{"qs":"x"}`,
	`{"qs":"\"\\'\""}`, `{"qs":"null"}`, `{"qs":"\"a\"b\""}`, `{"qu":"256"}`, `{"qarr":[1]}`, `{"qarr":"[1]"}`,
	`{"qi":"1","qi":"2"}`, `{"qi":[]}`, `{"qi":{}}`, `{"qi":true}`,
	// Bytes: base64 with padding, CR and LF ignored, arrays of numbers.
	`{"Bytes":"AQID"}`, `{"Bytes":"AQI="}`, `{"Bytes":"AQI"}`, `{"Bytes":"AQ\r\nID"}`, `{"Bytes":"AQ ID"}`,
	`{"Bytes":""}`, `{"Bytes":[1,2,255]}`, `{"Bytes":[256]}`, `{"Bytes":[]}`, `{"NBytes":"_-8="}`,
	`{"ArrB":[1,2,3]}`, `{"ArrB":"AQI="}`,
	// Arrays drop extra elements and zero missing ones; slices and maps are reused and merged.
	`{"Arr":[1,2,3,4,5]}`, `{"Arr":[1]}`, `{"Arr":[]}`, `{"Arr0":[1]}`, `{"ArrS":[{"name":"a"}]}`,
	`{"ArrS":[{"name":"a"}],"ArrS":[{"price":1}]}`, `{"Ints":[1,2,3],"Ints":[4]}`, `{"Ints":[1],"Ints":[],"Ints":[2]}`,
	`{"M":{"a":1},"M":{"b":2}}`, `{"MStruct":{"a":{"name":"x"}},"MStruct":{"a":{"price":2}}}`,
	`{"ItemP":{"name":"x"},"ItemP":{"price":2}}`, `{"PP":"s"}`, `{"PP":null}`, `{"IntPs":[1,null,3]}`,
	// Map keys.
	`{"MI":{"1":"a","-2":"b","+3":"c","007":"d"}}`, `{"MI":{"x":"a"}}`, `{"MI":{"1.5":"a"}}`,
	`{"MU":{"255":true}}`, `{"MU":{"256":true}}`, `{"MU":{"-1":true}}`, `{"MSt":{"on":1}}`,
	`{"MColor":{"#010203":1}}`, `{"MColor":{"red":1}}`, `{"MMoney":{"a":{"cents":1}}}`,
	// An integer key with text methods is read by UnmarshalText, as is a string key.
	`{"MCode":{"c10":"a","c-2":"b"}}`, `{"MCode":{"16":"a"}}`, `{"MWord":{"<a>":1,"b":2}}`,
	// A key whose pointer has UnmarshalJSON too is read by it, as written.
	`{"MQuote":{"a":1,"\u0041":2,"A":3,"<":4,"\u003c":5,"\/":6}}`, `{"MQuote":{"bad":1}}`, `{"MQuote":{"x":1,"bad":2,"y":3}}`,
	// Embedded structs: promotion, conflicts, allocation through embedded pointers.
	`{"promoted":"p","deep":"d","count":2,"kind":"k","Level":1,"shadowed":"s"}`, `{"deep":null}`,
	`{"Name":"ambiguous","X":"x","tagged":1,"Only1":1,"Only2":2,"Y":3}`, `{"x":"lower"}`,
	// Methods: UnmarshalJSON gets the raw value, with white space inside.
	`{"Money":{ "cents" : 5 },"MoneyP":{"cents":6},"Monies":[{"cents":1},null]}`, `{"Money":[]}`,
	`{"Temp":"12.5C","TempP":"1C"}`, `{"Temp":"x"}`, `{"Raw":[1, 2]}`, `{"Raw":{"a" : "b"}}`,
	`{"val":1,"name":"x"}`, `{"name":"x"}`, `{"VAL":null}`,
	`{"Word":"<w>","Words":["<a>","<b>","<c>"]}`, `{"Time":"2024-02-30T00:00:00Z"}`, `{"Time":"2024-01-01T00:00:00+01:00"}`,
	// Syntax.
	``, ` `, `{`, `}`, `{"S":"x",}`, `{"S":"x"} {}`, `{"S":"x"}  `, `{"S" "x"}`, `{,"S":"x"}`, `[]`, `[1]`, `"x"`,
	`nul`, `nulll`, `{"B":tru}`, `{"B":truex}`, `{"S":"x"`, `{"Ints":[1,]}`, `{"Ints":[,1]}`, `{"Ints":[1 2]}`,
	`{"unknown":[1,]}`, `{"unknown":{"a"}}`, `{"unknown":"\x"}`, "{\"unknown\":\"\x01\"}", `{"unknown":01}`,
	"\xef\xbb\xbf{}", `{"S":"x"}` + "\x00",
}

func TestDecodeEdgeCases(t *testing.T) {
	for _, doc := range decodeCases {
		src := []byte(doc)
		checkDecode(t, EverythingCodec{}, src, zero[Everything])
		checkDecode(t, ConflictsCodec{}, src, zero[Conflicts])
		checkDecode(t, FoldedCodec{}, src, zero[Folded])
		checkDecode(t, PresenceCodec{}, src, zero[Presence])
		checkDecode(t, EverythingCodec{}, src, func() *Everything { // merging into existing values
			n := 1
			return &Everything{
				Ints: []int{9, 9, 9}, M: map[string]int{"z": 1}, ItemP: &Item{Name: "old"}, P: &n,
				ArrS: [2]Item{{Name: "a0", Price: 1}, {Name: "a1"}}, EmbeddedPtr: &EmbeddedPtr{Deep: "old"},
				MStruct: map[string]Item{"a": {Name: "old", Price: 5}},
			}
		})
	}
}

func TestDecodeDepth(t *testing.T) {
	for _, depth := range []int{9999, 10000, 10001} {
		for _, tmpl := range []string{`{"unknown":%s}`, `{"kids":[%s]}`} {
			inner := strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1)
			doc := []byte(strings.Replace(tmpl, "%s", inner, 1))
			checkDecode(t, TreeCodec{}, doc, zero[Tree])
		}
		// Nesting through the recursive type itself.
		doc := strings.Repeat(`{"next":`, depth-1) + `{}` + strings.Repeat(`}`, depth-1)
		checkDecode(t, NodeCodec{}, []byte(doc), zero[Node])
	}
}

func TestEncodeEdgeCases(t *testing.T) {
	i := 5
	s := "s"
	ps := &s
	cases := []Everything{
		{},
		{F64: math.NaN()}, {F32: float32(math.Inf(1))}, {F64: math.Inf(-1)}, {OmitF: math.NaN()},
		{F64: 1e21}, {F64: 1e20}, {F64: 1e-6}, {F64: 1e-7}, {F64: 123456789e-15}, {F32: 1e21}, {F32: 1e-7},
		{F64: math.Copysign(0, -1)}, {F32: 16777217}, {F64: 5e-324}, {F64: math.MaxFloat64},
		{S: "<>&\u2028\u2029\x00\x1f\x7f\"\\\xff"}, {QS: "<\"x\">"}, {QSt: "\xff"},
		{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, {Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Time: time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600))},
		{Time: time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("", -23*3600-59*60-59))},
		{Time: time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("", 30))},
		{Time: time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("", -30))},
		{Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}, {Time: time.Date(0, 1, 1, 0, 0, 0, 1, time.Local)},
		{TimeP: &time.Time{}}, {Temp: -300}, {TempP: new(Celsius)},
		{P: &i, PP: &ps, QP: &i, OmitP: &i},
		{Raw: json.RawMessage(`{ "a" : [ 1 , "<" ] }`)}, {Raw: json.RawMessage(`{"a":`)}, {Raw: json.RawMessage(` `)},
		{Raw: json.RawMessage("\"\u2028\"")}, {Raw: json.RawMessage(`1 2`)}, {Raw: json.RawMessage("\"\xff\"")},
		{Bytes: []byte{}, NBytes: Bytes{1}, Ints: []int{}, M: map[string]int{}, Counts: Counts{}},
		{MI: map[int]string{10: "a", 9: "b", -1: "c", 100: "d"}, MU: map[uint8]bool{10: true, 9: false, 200: true}},
		{MColor: map[Color]int{{1, 2, 3}: 1, {0, 0, 0}: 2}, MMoney: map[string]Money{"a": {1}}},
		// An integer key with a MarshalText method is written by it, a string key as itself.
		{MCode: map[Code]string{1: "a", 16: "b", -2: "c", 0: "d"}, MWord: map[Word]int{"a": 1, "<b>": 2}},
		{Words: [2]Word{"a", "<b>"}, Monies: []Money{{1}, {2}}, MoneyP: &Money{3}},
		// omitzero: -0 is zero, as with ==; an IsZero method decides, on the value or the
		// pointer; an empty slice or map is not zero, but is empty.
		{ZeroF: math.Copysign(0, -1), ZeroA: [2]int{0, 0}, ZeroSt: Item{Price: float32(math.Copysign(0, -1))}},
		{ZeroF: math.NaN(), ZeroSt: Item{Name: "x"}, ZeroA: [2]int{0, 1}, ZeroLv: 2, ZeroB: true, ZeroS: "s", ZeroI: -1},
		{ZeroSl: []int{}, ZeroM: map[string]int{}, ZeroBoth: []int{}, ZeroP: new(int)},
		{ZeroSl: []int{0}, ZeroBoth: []int{0}, ZeroT: time.Unix(0, 0).UTC(), ZeroPT: &time.Time{}},
		{ZeroPT: new(time.Time), ZeroSp: Span{From: 3, To: 3}, ZeroBu: Budget{Left: -1}, ZeroPB: &Budget{}},
		{ZeroSp: Span{From: 3, To: 4}, ZeroBu: Budget{Left: 1}, ZeroPB: &Budget{Left: 2}},
		{ZeroMap: map[string]Zeroed{"a": {}, "b": {B: Budget{Left: 1}, N: 1}, "c": {T: time.Unix(1, 0).UTC()}}},
		// omitempty and omitzero: either omits.
		{BothP: new(int), BothM: map[string]int{}, BothPT: &time.Time{}, BothS: "x", BothB: true, BothI: 1},
		{BothM: map[string]int{"a": 1}, BothPT: new(time.Time), BothT: time.Unix(0, 0).UTC(), BothSp: Span{From: 1, To: 2}},
	}
	for i := range cases {
		checkEncode(t, EverythingCodec{}, &cases[i])
	}
	// Maps of structs with pointer-receiver MarshalJSON fields are not addressable.
	checkEncode(t, WithMarshalerCodec{}, &WithMarshaler{Money: Money{7}, Extra: "x"})
}

func TestEncodeCycle(t *testing.T) {
	n := &Node{Value: 1}
	n.Next = n
	checkEncode(t, NodeCodec{}, n)

	long := &Node{}
	for i := range 3000 {
		long = &Node{Value: i, Next: long}
	}
	checkEncode(t, NodeCodec{}, long)

	tr := &Tree{Name: "root", ByName: map[string]*Tree{}}
	tr.ByName["self"] = tr
	checkEncode(t, TreeCodec{}, tr)

	// A map that holds itself through a map value, a copy: the encoders find the cycle by the
	// map, and a map nested deep without one encodes.
	links := map[string]Web{}
	links["self"] = Web{Name: "self", Links: links}
	checkEncode(t, WebRootCodec{}, &WebRoot{Web: Web{Name: "root", Links: links}})
	webs := Webs{}
	webs["self"] = webs
	checkEncode(t, WebRootCodec{}, &WebRoot{Webs: webs})
	deep, deepWebs := Web{}, Webs{}
	for range 3000 {
		deep = Web{Links: map[string]Web{"a": deep}}
		deepWebs = Webs{"a": deepWebs}
	}
	checkEncode(t, WebRootCodec{}, &WebRoot{Web: deep, Webs: deepWebs})
}
