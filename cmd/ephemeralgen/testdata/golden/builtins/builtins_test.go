package builtins_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/testdata/golden/builtins"
)

// doc fills every field of a Shelf.
const doc = `{"id":"a","items":[{"name":"x"},{"name":"y"}],"tags":["t"],"best":{"name":"b"},"count":3,
"top":[{"name":"p"}],"byName":{"n":{"name":"m"},"z":null},"marks":{"k":1},"runs":{"r":[1,2],"e":[]},
"pins":{"p":{"s":{"N":4}}},"values":[{"n":5}],"words":["w"],"bytes":"AQI=","deep":{"d":{"e":6}},"note":"o"}`

// TestCodec checks the output that does without the predeclared functions the package hides:
// it decodes, encodes and copies as encoding/json does.
func TestCodec(t *testing.T) {
	var c builtins.ShelfCodec
	for _, src := range []string{doc, `{"items":[],"tags":[],"top":[],"runs":{"e":[]}}`, `{"top":[null,{"name":"q"},{"name":"r"}]}`} {
		// Into a value that holds something already, as the decoder may reuse it.
		var got, want builtins.Shelf
		for _, v := range []*builtins.Shelf{&got, &want} {
			if err := json.Unmarshal([]byte(doc), v); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Decode([]byte(src), &got); err != nil {
			t.Fatalf("Decode(%s): %v", src, err)
		}
		if err := json.Unmarshal([]byte(src), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Decode(%s) = %+v, want %+v", src, got, want)
		}
		enc, err := c.Encode(nil, &got)
		if err != nil {
			t.Fatal(err)
		}
		if wantEnc, _ := json.Marshal(&want); string(enc) != string(wantEnc) {
			t.Errorf("Encode = %s, want %s", enc, wantEnc)
		}

		var cp builtins.Shelf
		c.Clone(&cp, &got)
		if !reflect.DeepEqual(cp, got) {
			t.Errorf("Clone = %+v, want %+v", cp, got)
		}
	}

	var src, cp builtins.Shelf
	if err := c.Decode([]byte(doc), &src); err != nil {
		t.Fatal(err)
	}
	c.Clone(&cp, &src)
	cp.Items[0].Name, cp.Tags[0], cp.Best.Name, *cp.Count, cp.Top[0].Name = "-", "-", "-", -1, "-"
	cp.ByName["n"].Name, cp.Marks["k"], cp.Runs["r"][0], cp.Values[0].N = "-", -1, -1, -1
	cp.Words[0], cp.Bytes[0], cp.Deep["d"]["e"], cp.Note = "-", 0, -1, "-"
	cp.Pins["q"] = builtins.Pin{}
	var orig builtins.Shelf
	if err := json.Unmarshal([]byte(doc), &orig); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(src, orig) {
		t.Errorf("changing the copy changed the value copied: %+v, want %+v", src, orig)
	}
}
