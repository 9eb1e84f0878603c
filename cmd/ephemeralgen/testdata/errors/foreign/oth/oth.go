// Package oth has exported types whose fields have types that generated code in another
// package cannot write.
package oth

// WithAnon has a field of an unnamed struct type with an unexported field: a struct type
// literal outside this package cannot declare it.
type WithAnon struct {
	Anon struct {
		X int
		y int
	}
}

type hidden struct{ H int }

// WithHidden has an exported field of an unexported type.
type WithHidden struct {
	H hidden
}

// Box is generic; its type parameter is not used by its fields.
type Box[T any] struct{ N int }

// Boxed has a field of Box instantiated with an unexported type.
type Boxed struct {
	B Box[hidden]
}

// Open has unnamed struct types with exported fields only, which generated code can write.
type Open struct {
	Anon struct{ X, Y int }
	List []struct{ Z string }
}
