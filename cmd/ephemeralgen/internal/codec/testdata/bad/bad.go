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
	Ignored chan int `json:"-"`
	skipped chan int
}
