// Package bad has field types that generated codecs do not support.
package bad

import (
	"encoding/json"
	"unsafe"
)

// Meta is contained in Presence.
type Meta struct {
	OK string
	Ch chan int
}

// Money has its own JSON methods.
type Money int

// MarshalJSON writes m.
func (m Money) MarshalJSON() ([]byte, error) { return []byte("1"), nil }

// Flex is not comparable and has no IsZero method.
type Flex struct{ Tags []string }

// Quoted is a map key whose pointer has UnmarshalText and UnmarshalJSON methods: encoding/json
// reads it by UnmarshalJSON, with the key as quoted in the document.
type Quoted string

// UnmarshalText sets q to b.
func (q *Quoted) UnmarshalText(b []byte) error { *q = Quoted(b); return nil }

// UnmarshalJSON sets q to b.
func (q *Quoted) UnmarshalJSON(b []byte) error { *q = Quoted(b); return nil }

// Point is a struct map key with text methods and UnmarshalJSON.
type Point struct{ X, Y int }

// MarshalText writes nothing.
func (p Point) MarshalText() ([]byte, error) { return nil, nil }

// UnmarshalText reads nothing.
func (p *Point) UnmarshalText([]byte) error { return nil }

// UnmarshalJSON reads nothing.
func (p *Point) UnmarshalJSON([]byte) error { return nil }

// Presence has one unsupported field per line.
type Presence struct {
	Room    string
	Meta    Meta
	Any     any `json:"any"`
	Fn      func()
	C       complex128
	Ptr     unsafe.Pointer
	Keys    map[[2]int]string
	Zero    Flex  `json:"zero,omitzero"`
	Quoted  Money `json:"quoted,string"`
	Num     json.Number
	ByQ     map[Quoted]int // reported when decoding is planned, after the others
	ByPoint map[Point]int
	Ignored chan int `json:"-"`
	skipped chan int
}
