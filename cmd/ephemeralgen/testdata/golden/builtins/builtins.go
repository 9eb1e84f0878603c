// Package builtins is a golden test case: it declares, at package scope, predeclared names
// that generated code would use (the functions new, make, len, copy and clear) or could use,
// and the names of helpers that ephemeralgen emits. The output avoids the functions the
// package hides, and its helpers take names the package does not have.
package builtins

import "encoding/json"

//go:generate go tool ephemeralgen

// Shelf is stored. Each field needs one of the predeclared functions the package hides: to
// allocate (new), to decode a slice (len) or an array (len, clear), to copy a slice (make,
// len, copy) or a map (make, len).
//
//ephemeral:store id=shelf ttl=1m key=ID
type Shelf struct {
	ID     string                    `json:"id"`
	Items  []Item                    `json:"items"`
	Tags   []string                  `json:"tags"`
	Best   *Item                     `json:"best"`
	Count  *int                      `json:"count"`
	Top    [2]*Item                  `json:"top"`
	ByName map[string]*Item          `json:"byName"`
	Marks  map[string]int            `json:"marks"`
	Runs   map[string][]int          `json:"runs"`
	Pins   map[string]Pin            `json:"pins"`
	Values []PinValue                `json:"values"`
	Words  Words                     `json:"words"`
	Bytes  []byte                    `json:"bytes"`
	Deep   map[string]map[string]int `json:"deep"`
	*Extra
}

// Item is a struct of the package, whose helpers would be ephemeralEncodeItem and so on.
type Item struct {
	Name string `json:"name"`
}

// Extra is embedded by pointer: the decoder allocates it.
type Extra struct {
	Note string `json:"note"`
}

// Stamp has a MarshalJSON method with a pointer receiver, so that a struct that holds one
// is encoded by a second helper where it is not addressable (as a map value).
type Stamp struct{ N int }

// MarshalJSON writes the number.
func (s *Stamp) MarshalJSON() ([]byte, error) { return json.Marshal(s.N) }

// Pin holds a Stamp: as a map value, it is encoded by the helper for values that are not
// addressable, whose name ends in Value.
type Pin struct {
	S Stamp `json:"s"`
}

// PinValue is a struct whose helpers would have the name of Pin's helper for values.
type PinValue struct {
	N int `json:"n"`
}

// Words has its own UnmarshalJSON method and no MarshalJSON: Clone copies it by a round trip
// through the codec, which makes an encoder and a decoder.
type Words []string

// UnmarshalJSON reads an array of strings.
func (w *Words) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, (*[]string)(w)) }

// The predeclared functions that generated code calls, or could call, hidden.
func new()     {}
func make()    {}
func len()     {}
func copy()    {}
func clear()   {}
func cap()     {}
func append()  {}
func min()     {}
func max()     {}
func panic()   {}
func delete()  {}
func print()   {}
func recover() {}

var any, iota = 1, 2

// Names of the helpers that ephemeralgen would emit for Shelf and Item.
func ephemeralEncodeShelf()     {}
func ephemeralDecodeItem()      {}
func ephemeralCloneItem()       {}
func ephemeralEncodeItemValue() {}

var ephemeralFieldsItem2 = 0

type ephemeralCloneExtra struct{}
