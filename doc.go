// Package ephemeral is typed, TTL-scoped key/value state with a change stream: presence,
// sessions, leases, "who is typing", temporary workflow state, correct under concurrency, on
// Redis or in memory.
//
// A [Store] holds values of one Go type T under keys of type K, in one store ID, partitioned by
// tenant. Every entry has a time-to-live. ephemeralgen (cmd/ephemeralgen) generates, for an
// annotated struct, the key type, the value's [Codec] (reflection-free JSON, byte-identical to
// encoding/json) and a constructor:
//
//	//ephemeral:store id=presence ttl=30s key=Room,UserID
//	type Presence struct { ... }
//
//	// generated:
//	type PresenceStore = ephemeral.Store[PresenceKey, Presence]
//	func NewPresenceStore(b ephemeral.Backend, opts ...ephemeral.StoreOption) (*PresenceStore, error)
//
// The state is kept by a [Backend]: runtime/memstore in one process, runtime/redisstore shared
// by many. Programs import this package and one backend; what runs beneath the API lives under
// runtime/ (the backend contract runtime/backend, the backends, the JSON primitives of
// generated codecs runtime/jsonc, and the conformance suite runtime/storetest), in the manner of
// protobuf-go's runtime/protoimpl, so that this package is named for what users want and no
// package shadows the standard library's runtime.
//
// The contract every backend fulfils:
//
//   - Upsert (and Put, which takes the key from the value) creates or replaces an entry and
//     resets its TTL. CreatedAt is kept while the key stays live and reset after a remove or an
//     expiry.
//   - Touch extends the TTL of a live key; a quiet touch does so without an event. TouchMany
//     touches many keys of a tenant, each as Touch would, sent together.
//   - Remove deletes a key; Get returns a live entry only, never an expired one.
//   - Snapshot returns all live entries sorted by key (byte order of the keys' string form) and
//     a cursor; a [Reader] started after that cursor sees every change the snapshot does not
//     contain.
//   - Every change produces a version, strictly increasing per (store ID, tenant), and one event.
//     Versions and UpdatedAt change together: upserts and (non-quiet) touches set both.
//     Versions belong to an epoch, the lifetime of the tenant's state (Entry.Epoch); a state made
//     anew starts again at version 1 under a later epoch, so (epoch, version) increases for the
//     tenant's whole life unless the backend's clock goes back ([IfCursor] guards a write by it;
//     package lock makes fencing tokens of it).
//   - An entry is gone at its ExpiresAt, and its expire event reaches readers promptly whether or
//     not anything else happens in the tenant.
//   - A reader never skips events silently: when its cursor fell out of the retained history,
//     or the backend lost its state (a reset Redis), it gets an [EventOverflow] event and should
//     re-snapshot; a [Mirror] does this for you.
//
// Every rejected call returns an error that matches one of the sentinel errors with
// [errors.Is] and writes nothing.
//
// A value handed to a caller (by Get, Snapshot, a Reader or a Mirror) is the caller's own: no
// slice, map or pointer inside it is shared with the store or another caller. Decoding the
// stored bytes for every caller would give that, at the cost of a decode per read; instead, on a
// backend that keeps values in memory (runtime/memstore), a store whose codec is a [Cloner]
// decodes each version of a value once, keeps it beside the value, and hands out deep copies
// made by Clone, which cost a fraction of a decode (a tenth for a small struct with a slice,
// and a plain assignment for one without slices, maps or pointers). A value type that holds no
// slice, map, pointer, interface, channel or func at any depth (strings and time.Time are fine)
// is flat: the store finds that out once, in New, and copies its values by assignment without
// calling Clone, whatever the codec. With a codec without Clone and a type that is not flat,
// every read decodes.
package ephemeral
