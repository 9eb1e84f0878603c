// Package typeunknown is an error test case: a type error of the package in a field that the
// codec leaves out, of a struct type that generated code writes, is reported alone.
package typeunknown

// V is a store.
//
//ephemeral:store id=v ttl=1s
type V struct {
	Anon struct {
		X       int
		Ignored Missing `json:"-"`
	}
}
