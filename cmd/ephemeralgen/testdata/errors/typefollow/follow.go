// Package typefollow is an error test case: a type error of the package that the generated
// code would repeat, where it names the same type, is reported once, in the package.
package typefollow

// Box is generic, for integers.
type Box[T interface{ ~int }] struct{ V T }

// V is a store.
//
//ephemeral:store id=v ttl=1s
type V struct {
	B Box[string]
	X int
}
