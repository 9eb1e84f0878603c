// Package shadow is a golden test case: its types, and a package it imports, have the names
// that generated code gives its parameters and local variables (v, e, d, name, s, k, y, ...),
// which must not hide them from the code in their scope; another package it imports has the
// name of a predeclared function that generated code calls (copy).
package shadow

import (
	"encoding/json"

	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/testdata/golden/shadow/copy"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/testdata/golden/shadow/i"
)

//go:generate go tool ephemeralgen

// Shadowed has a field of each of the types below, where generated code names its type
// within the scope of a parameter or local of the same name.
//
//ephemeral:store id=shadowed ttl=1s key=P,Err
type Shadowed struct {
	P      p              `json:"p"`   // key fields: ParseShadowedKey converts to their types
	Err    err            `json:"err"` // after its locals p and err are declared
	Name   *name          `json:"name"`
	Names  []name         `json:"names"`
	ByName map[name]name  `json:"byName"`
	S      []s            `json:"s"`
	K      map[k][]k      `json:"k"`
	Y      map[string][]y `json:"y"`
	V      v              `json:"v,omitzero"`
	D      *d             `json:"d"`
	E      e              `json:"e,omitzero"`
	M      map[string][]m `json:"m"`
	C      [][]c          `json:"c"`
	B      b              `json:"b"`
	I      [2]*i.Point    `json:"i"`
	Spans  []copy.Span    `json:"spans"` // copied by the function copy, which an import copy would hide
}

// Options is stored too; the parameters of its constructor are b and opts.
//
//ephemeral:store id=opts ttl=1s name=Options
type opts struct {
	X int `json:"x"`
}

type (
	p    string          // in the key parser, the parts of the key
	err  int             // in the key parser, its error
	name string          // in the decoder of a struct, the name of a member
	s    struct{ N int } // in the decoder of a slice, the new slice
	k    string          // in the decoder and copier of a map, a key
	y    struct{ N int } // in the decoder and copier of a map, a value
	v    struct{ N int } // the value the helpers encode, decode or copy
	d    struct{ N int } // the decoder
	e    struct{ N int } // the encoder
	m    struct{ N []int }
	c    struct{ N int } // in copiers, a copy
)

// b holds a reference behind its JSON methods, and is copied by a round trip through them.
type b []string

// MarshalJSON writes b as an array.
func (x b) MarshalJSON() ([]byte, error) { return json.Marshal([]string(x)) }

// UnmarshalJSON reads an array.
func (x *b) UnmarshalJSON(data []byte) error { return json.Unmarshal(data, (*[]string)(x)) }

// copy1 has the name that jennifer, which writes the output, would give the import of package
// copy by itself.
var copy1 = "taken"
