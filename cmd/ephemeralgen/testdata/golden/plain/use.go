package plain

import "context"

// The uses below of what ephemeralgen generates are the kinds it must accept while it loads
// the package without its output: a method promoted from an embedded store, an interface
// that a generated method implements, and a call whose arguments are a store call's results.

// leases embeds the generated store.
type leases struct {
	*leaseStore
}

func (l leases) take(ctx context.Context, name, owner string) error {
	return firstErr(l.Upsert(ctx, leaseKey{Name: name}, lease{Name: name, Owner: owner}))
}

// keyed is implemented by the generated EphemeralKey method.
type keyed interface{ EphemeralKey() leaseKey }

var _ keyed = lease{}

func firstErr[T any](_ T, err error) error { return err }
