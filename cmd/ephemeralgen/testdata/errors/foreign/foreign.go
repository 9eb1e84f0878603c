// Package foreign is an error test case: fields whose types, of another package, generated
// code cannot write.
package foreign

import "github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/testdata/errors/foreign/oth"

// V is a store.
//
//ephemeral:store id=v ttl=1s
type V struct {
	Anon   oth.WithAnon
	Hidden oth.WithHidden
	Boxed  oth.Boxed
	Open   oth.Open
}
