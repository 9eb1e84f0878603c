package backend

import "time"

// Observer receives what a backend measures as it runs, for metrics (the adapter
// github.com/ephemeral-go/ephemeral/metrics/prom counts into Prometheus) or logs. A backend
// calls it on its hot paths, synchronously and sometimes with its locks held: a method must be
// fast, must not block and must not call the backend. Calls come from many goroutines at once.
//
// Every method gets the store ID and the tenant. Store IDs are few and fixed by the program;
// tenants are unbounded (a room, a user), so an Observer that makes metric labels should not
// make one per tenant.
//
// Embed [NopObserver] to implement only some methods, and to keep compiling when methods are
// added. A backend made without an Observer uses NopObserver, whose calls cost a few
// nanoseconds and allocate nothing.
type Observer interface {
	// Delivered is called when a reader's [Subscription.Next] returns an event, overflow
	// events included. age is how long after the event's At the reader got it, by the
	// backend's clock: the lag of the reader behind the change (for runtime/redisstore, the
	// Redis server's At against this process's clock, so a clock skew between them shows,
	// and the age may be negative). For an expire event At is when the backend removed the
	// entry: runtime/memstore reports its ExpiresAt, so the age includes a late removal;
	// runtime/redisstore the time of the script that removed it, so the age leaves out how
	// long after ExpiresAt that ran.
	Delivered(store, tenant string, kind EventKind, age time.Duration)
	// CatchUp is called when a reader reads events from the backend's storage itself, rather
	// than from the feed it shares with the tenant's other readers: it started before the
	// feed's window, fell behind it, or the tenant's state changed under it
	// (runtime/redisstore).
	CatchUp(store, tenant string)
	// WriteBatch is called when a backend applies n writes of a tenant in one call
	// (runtime/redisstore's group commit: 1 for a write that had no other in flight).
	WriteBatch(store, tenant string, n int)
	// Expired is called when the backend's expiry removed n due entries of a tenant, each with
	// its expire event. runtime/redisstore reports the expiries of its reader pumps' ticks.
	Expired(store, tenant string, n int)
	// Error is called when a call to the backend's storage failed, and not because the
	// caller's context ended. call names it; for runtime/redisstore it is the script
	// ("write", "get", "read", "open", "tick") or the command ("snapshot") that failed: a
	// Redis error reply such as a Lua error, a lost connection, a reply the backend cannot
	// parse. What serves every store and tenant of a backend reports its failures with store
	// and tenant empty: for runtime/redisstore, "poll" (the periodic check of the tenants its
	// readers watch), "pubsub" (its pub/sub connection, lost or refused) and "config" (a
	// server whose maxmemory-policy may evict keys, once a backend opens its first store).
	Error(store, tenant, call string, err error)
	// Refused is called when the tenant's state refused a write, which then changed nothing:
	// err matches [ErrCapacity] (an upsert of a new key in a tenant that holds
	// Limits.MaxEntries live entries) or [ErrConflict] (the write's [Condition] did not hold;
	// package lock's acquires of a lock that is taken among them). A touch or remove of a key
	// that is not live is no refusal: its result says so.
	Refused(store, tenant string, err error)
	// Readers is called with delta 1 when a subscription of a tenant opens and -1 when it is
	// closed: their sum over a store's tenants is the store's open readers (mirrors and lock
	// waiters among them). A sum that only grows is a leak: readers never closed.
	Readers(store, tenant string, delta int)
	// StateLost is called when a write finds the tenant's state made anew (a new epoch)
	// sooner after this process's last successful write to it, in the old epoch, than the
	// state could have expired (its event retention): the backend lost the state, with its
	// entries and events (runtime/redisstore: a restart without persistence, a FLUSHALL, a
	// failover to a replica that lacked it, an eviction). Readers of the tenant get an
	// overflow for it; this reports it also where no reader is open. It is called once per
	// process that had written the tenant lately (at its first write after the loss), and
	// not for a tenant that was idle past its retention, whose state expired. A process may
	// miss one: runtime/redisstore keeps the epoch of a store's tenants in 4,096 slots, by a
	// hash of the name, and a tenant whose slot another tenant used since its last write is
	// written as if for the first time (a store of many busy tenants misses most losses).
	// runtime/memstore never loses a state.
	StateLost(store, tenant string)
}

// NopObserver is an [Observer] that does nothing. Embed it in an Observer that implements
// only some methods.
type NopObserver struct{}

// Delivered does nothing.
func (NopObserver) Delivered(store, tenant string, kind EventKind, age time.Duration) {}

// CatchUp does nothing.
func (NopObserver) CatchUp(store, tenant string) {}

// WriteBatch does nothing.
func (NopObserver) WriteBatch(store, tenant string, n int) {}

// Expired does nothing.
func (NopObserver) Expired(store, tenant string, n int) {}

// Error does nothing.
func (NopObserver) Error(store, tenant, call string, err error) {}

// Refused does nothing.
func (NopObserver) Refused(store, tenant string, err error) {}

// Readers does nothing.
func (NopObserver) Readers(store, tenant string, delta int) {}

// StateLost does nothing.
func (NopObserver) StateLost(store, tenant string) {}

var _ Observer = NopObserver{}
