// Package unique is an error test case: stores that clash with each other or with the package.
package unique

// A is the first store with id "one".
//
//ephemeral:store id=one ttl=1s
type A struct{ X string }

// B uses id "one" again.
//
//ephemeral:store id=one ttl=1s
type B struct{ X string }

// C takes the generated names of A.
//
//ephemeral:store id=c ttl=1s name=A
type C struct{ X string }

// D's generated store type is already declared.
//
//ephemeral:store id=d ttl=1s key=X
type D struct{ X string }

// DStore is hand-written.
type DStore struct{}

// E already has an EphemeralKey method.
//
//ephemeral:store id=e ttl=1s key=X
type E struct{ X string }

// EphemeralKey is hand-written.
func (E) EphemeralKey() string { return "" }

// F's codec is already declared.
//
//ephemeral:store id=f ttl=1s
type F struct{ X string }

// FCodec is hand-written.
type FCodec struct{}

// G's key parser is already declared.
//
//ephemeral:store id=g ttl=1s key=X
type G struct{ X string }

// ParseGKey is hand-written.
func ParseGKey() {}
