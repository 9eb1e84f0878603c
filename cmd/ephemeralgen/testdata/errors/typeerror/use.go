// Package typeerror is an error test case: real type errors are reported, while references
// to the identifiers ephemeralgen is about to generate are not.
package typeerror

import "context"

// V is a store.
//
//ephemeral:store id=v ttl=1s key=X
type V struct{ X string }

func use(ctx context.Context) error {
	s, err := NewVStore(nil)
	if err != nil {
		return err
	}
	_, err = s.Put(ctx, V{X: "a"})
	_ = V{}.EphemeralKey()
	k, _ := ParseVKey("a")
	_ = k
	// Calls whose arguments are the results of a call on the store: go/types says "not
	// enough arguments" of them, as if the store's method returned one value of unknown type.
	_ = pair(s.Upsert(ctx, k, V{X: "b"}))
	_ = pair(ParseVKey("b"))
	_ = pair(notDeclared()) // reported once, where the cause is
	return err
}

func pair(_ any, err error) error { return err }

var broken int = "not an int"
