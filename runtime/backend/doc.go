// Package backend is the contract between ephemeral's typed API (package
// github.com/ephemeral-go/ephemeral) and the backends that keep its state, in the manner of
// database/sql/driver: users never call it, backend authors implement it, and the conformance
// suite runtime/storetest checks an implementation against it.
//
// A [Backend] opens one [Store] per store ID, with the [Limits] of that ID; every operation of a
// Store names the tenant it works on. The typed API validates every argument before it calls a
// backend (key, tenant, TTL, payload size, cursor syntax, limits), so a backend may rely on
// valid arguments. A backend enforces Limits.MaxEntries, the conditions and the event limits
// itself, atomically with the write. Every write either applies its change completely, with
// exactly one event (none for a quiet touch), or not at all.
//
// Values are the codec's bytes, stored and returned byte for byte. Times are Unix milliseconds
// of the backend's one clock (the Redis server's, for the Redis backend), the resolution of
// every backend. Every change takes a version, strictly increasing per (store ID, tenant); an
// event's version is also the sequence number of its [Cursor] within the tenant's epoch.
//
// # Events are shared
//
// The events a [Subscription] returns are shared and read-only: a backend keeps one copy of
// each event of a tenant in the tenant's [Log], and every subscription of the tenant in the
// process returns a pointer into it. Neither the backend nor any receiver may modify an event
// it got from Next (nor its Value): another reader holds the same one. Each such event carries
// a [Memo], where the typed API keeps the event's decoded value, so that a value is decoded
// once per process however many readers receive it; the typed API then gives each reader a
// copy of its own (see the package ephemeral's Reader).
//
// A Log keeps a bounded window of a tenant's latest events, readers index into it by version
// without a lock, and a wake-up signals each of a tenant's waiting readers, each of which waits
// on a [Waiter] of its own (spaced out when there are many, so that one wake-up delivers
// several appends). A reader that falls out
// of the window finds its next event gone and continues from the backend's own history: the
// Redis stream for runtime/redisstore, with an overflow event when that lost it too; for
// runtime/memstore, whose Log is all the history it keeps, the overflow event at once. A
// backend whose writes hold a lock of their own guards its logs with it ([NewGuardedLog]), as
// memstore does, and spares a lock per event.
//
// The helpers here are the rules every backend would otherwise derive on its own:
// [Condition.Check] (with its [ConflictError]), [Overflow] for readers that fell behind,
// [Limits.WithDefaults] and [Limits.Validate], [SameLimits] for the one-limits-per-ID rule,
// the cursor's text form ([Cursor.String], [ParseCursor]), and the shared event log ([Log],
// [Memo]).
//
// [Observer] is what a backend reports for metrics: deliveries to readers and their lag,
// catch-up reads, write batches, expiries, refused writes, open readers, failed storage calls
// and lost tenant states. Backends take one as an
// option (WithObserver) and default to [NopObserver].
package backend
