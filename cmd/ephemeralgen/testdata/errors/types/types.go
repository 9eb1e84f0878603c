// Package types is an error test case: directives on types that cannot be stores.
package types

import (
	"sync"
	"sync/atomic"
	"time"
)

// Long has an id of 257 bytes.
//
//ephemeral:store id=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx ttl=1s
type Long struct{ X string }

// Status is not a struct.
//
//ephemeral:store id=status ttl=1s
type Status string

// Box is generic.
//
//ephemeral:store id=box ttl=1s
type Box[T any] struct{ V T }

// Alias is an alias.
//
//ephemeral:store id=alias ttl=1s
type Alias = Keys

// Keys has key fields that are missing or of types keys cannot have, both reported.
//
//ephemeral:store id=keys ttl=1s key=Rom,Since
type Keys struct {
	Room  string
	Since time.Time
}

// Keys2 has a key field of an unsupported type.
//
//ephemeral:store id=keys2 ttl=1s key=Room,At
type Keys2 struct {
	Room string
	At   time.Time
}

// Keys3 lists a field twice.
//
//ephemeral:store id=keys3 ttl=1s key=Room,Room
type Keys3 struct{ Room string }

// Fields has a field the codec cannot encode.
//
//ephemeral:store id=fields ttl=1s
type Fields struct {
	Events chan int
}

// Base is embedded in Promoted.
type Base struct{ Room string }

// Promoted has a key field that is promoted from an embedded struct.
//
//ephemeral:store id=promoted ttl=1s key=Room
type Promoted struct {
	Base
	User string
}

// Hidden has key fields that the codec does not write.
//
//ephemeral:store id=hidden ttl=1s key=Room
type Hidden struct {
	Room string `json:"-"`
}

// Lower has an unexported key field.
//
//ephemeral:store id=lower ttl=1s key=room
type Lower struct {
	room string
	X    string
}

// Locked holds locks, which the store would copy.
//
//ephemeral:store id=locked ttl=1s
type Locked struct {
	Mu    sync.Mutex `json:"-"`
	Count atomic.Int64
	Inner inner
	Ptr   *sync.Mutex // behind a pointer: no copy
}

type inner struct{ wgs [2]sync.WaitGroup }

// Lock is itself a lock.
//
//ephemeral:store id=lock ttl=1s
type Lock struct{ mu sync.Mutex }

// Lock locks l.
func (l *Lock) Lock() { l.mu.Lock() }

// Unlock unlocks l.
func (l *Lock) Unlock() { l.mu.Unlock() }

// Stringy has a key field named like the key type's String method.
//
//ephemeral:store id=stringy ttl=1s key=Kind,String
type Stringy struct {
	Kind   string
	String string
}

// BadAndUnsupported has a bad directive and a field the codec cannot handle: both are
// reported at once.
//
//ephemeral:store id=both ttl=0s
type BadAndUnsupported struct {
	Events chan int
}

// IntBox is an alias of an instance of a generic type.
//
//ephemeral:store id=intbox ttl=1s
type IntBox = Box[int]

// Loose has fields of interface types.
//
//ephemeral:store id=loose ttl=1s
type Loose struct {
	Any   any
	Attrs map[string]interface{}
}

// Shadowed has key fields that encoding/json does not write: Room and Other share a JSON name,
// as deep and as tagged, so neither is written; User's name is Alias's tag, which wins.
//
//ephemeral:store id=shadowed ttl=1s key=Room,User
type Shadowed struct {
	Room  string `json:"room"`
	Other string `json:"room"`
	User  string
	Alias string `json:"User"`
}

type hiddenBase struct {
	Since int64
}

// HiddenEmbed embeds a pointer to an unexported struct type, which encoding/json writes but
// cannot read back.
//
//ephemeral:store id=hiddenembed ttl=1s
type HiddenEmbed struct {
	*hiddenBase
	Name string
}
