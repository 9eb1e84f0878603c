package memstore

import "github.com/ephemeral-go/ephemeral/runtime/backend"

// open opens the store id of b with limits l (zero fields take the defaults), for the tests.
func open(b *Backend, id string, l ...backend.Limits) backend.Store {
	var lim backend.Limits
	if len(l) > 0 {
		lim = l[0]
	}
	st, err := b.Open(id, lim.WithDefaults())
	if err != nil {
		panic(err)
	}
	return st
}
