package codectest

import (
	"reflect"
	"testing"
)

// FuzzEncode builds values from the fuzz input and compares the codecs' output with
// encoding/json's, then decodes it with both.
func FuzzEncode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("0123456789abcdefghijklmnopqrstuvwxyz"))
	f.Add([]byte{0xff, 0xfe, 0x00, 0x01, 0x80, 0x7f, 0x3c, 0x26, 0xe2, 0x80, 0xa8})
	f.Fuzz(func(t *testing.T, data []byte) {
		fill := func(v any) { (&filler{src: &bytesSource{b: data}}).fill(reflect.ValueOf(v).Elem(), 6) }
		var e Everything
		fill(&e)
		if doc := checkEncode(t, EverythingCodec{}, &e); doc != nil {
			checkDecode(t, EverythingCodec{}, doc, zero[Everything])
		}
		var tr Tree
		fill(&tr)
		if doc := checkEncode(t, TreeCodec{}, &tr); doc != nil {
			checkDecode(t, TreeCodec{}, doc, zero[Tree])
		}
	})
}

// FuzzDecode decodes arbitrary input with the codecs and encoding/json: never a panic, the
// same success, equal values.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{}`, `null`, `{"room":"a","userId":"b","status":"on","level":3,"since":"2024-01-02T03:04:05Z","tabs":["x"]}`,
		`{"ROOM":"a","Tabs":null,"tabs":[],"since":null}`, `{"qi":"12","qb":"true","qs":"\"x\"","qp":"null","qf":"1e3"}`,
		`{"Ints":[1,2,3],"Arr":[1,2,3,4],"M":{"a":1},"MI":{"-5":"x"},"MColor":{"#010203":4}}`,
		`{"Bytes":"AAEC\r\n","NBytes":[1,2],"PP":"s","Money":{"cents":5},"Temp":"12C","Raw":[1, {"a":2}]}`,
		`{"next":{"value":1,"next":{"value":2}}}`, `{"kids":[{"name":"a","kids":[]}],"byName":{"x":null}}`,
		`{"name":"\ud83d\ude00\ud800\u0041","k":"\u212a","ſ":1}`, `[`, `{"a":1}x`, `{"deep":"d","count":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, EverythingCodec{}, data, zero[Everything])
		checkDecode(t, PresenceCodec{}, data, zero[Presence])
		checkDecode(t, TreeCodec{}, data, zero[Tree])
		checkDecode(t, NodeCodec{}, data, zero[Node])
		checkDecode(t, FoldedCodec{}, data, zero[Folded])
		checkDecode(t, ConflictsCodec{}, data, zero[Conflicts])
	})
}

// FuzzClone builds values from the fuzz input and requires their deep copies to be equal to
// them and to share no memory with them.
func FuzzClone(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("0123456789abcdefghijklmnopqrstuvwxyz"))
	f.Add([]byte{0xff, 0xfe, 0x00, 0x01, 0x80, 0x7f, 0x3c, 0x26, 0xe2, 0x80, 0xa8})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkClone(t, EverythingCodec{}, fillBytes[Everything](data))
		checkClone(t, RefsCodec{}, fillBytes[Refs](data))
		checkClone(t, TreeCodec{}, fillBytes[Tree](data))
		checkClone(t, ConflictsCodec{}, fillBytes[Conflicts](data))
	})
}

// fillBytes returns a function that fills a value from data, the same value every time, which
// a round trip through the codecs keeps.
func fillBytes[T any](data []byte) func(*T) {
	return func(v *T) {
		(&filler{src: &bytesSource{b: data}, canonical: true}).fill(reflect.ValueOf(v).Elem(), 6)
	}
}
