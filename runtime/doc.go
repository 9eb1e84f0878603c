// Package runtime is the typed, backend-independent core of ephemeral: TTL-scoped key/value
// state with a change stream.
//
// A [Store] holds values of one Go type T under string keys, in one store ID, partitioned by
// tenant. Every entry has a time-to-live. Values are encoded by a [Codec] (ephemeralgen
// generates one per annotated type; the runtime itself never uses reflection or encoding/json)
// and kept by a [Backend]: runtime/memstore for a single process, runtime/redisstore for many.
//
// The contract every backend fulfils:
//
//   - Upsert creates or replaces an entry and resets its TTL. CreatedAt is kept while the key
//     stays live and reset after a remove or an expiry.
//   - Touch extends the TTL of a live key; a quiet touch does so without an event.
//   - Remove deletes a key; Get returns a live entry only, never an expired one.
//   - Snapshot returns all live entries sorted by key (byte order) and a cursor; a [Reader]
//     started after that cursor sees every change the snapshot does not contain.
//   - Every change produces a version, strictly increasing per (store ID, tenant), and one event.
//     Versions and UpdatedAt change together: upserts and (non-quiet) touches set both.
//   - An entry is gone at its ExpiresAt, and its expire event reaches readers promptly whether or
//     not anything else happens in the tenant.
//   - A reader never skips events silently: when its cursor fell out of the retained history,
//     or the backend lost its state (a reset Redis), it gets an [EventOverflow] event and should
//     re-snapshot ([Mirror]-style code does this for you).
//
// Every rejected call returns an error that matches one of the sentinel errors with
// [errors.Is] and writes nothing.
//
// The package is named runtime, like the standard library's; code that needs both imports this
// one under another name (generated code uses ephemeralrt).
package runtime
