// Package redisstore is the Redis backend of ephemeral: a [runtime.Backend] for state shared
// by many processes, on a plain Redis server, a Sentinel-managed one or a Redis Cluster.
//
//	client := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	backend := redisstore.New(client)
//	defer backend.Close()
//	store, err := presence.NewPresenceStore(backend) // or runtime.New(backend, codec, cfg)
//
// # Key layout
//
// Every (store ID, tenant) owns three keys in one hash slot:
//
//	<prefix>:{<id>:<tenant>}:state   hash: "k"+key -> stored entry, and the tenant's meta:
//	                                 "#epoch", "#seq" (last version), "#due", "#trim", "#kexp"
//	<prefix>:{<id>:<tenant>}:exp     sorted set: key -> expiry (Unix ms)
//	<prefix>:{<id>:<tenant>}:events  stream of events, entry IDs "<version>-0"
//
// The meta lives in the state hash so that a write reads the meta and the old entry with one
// HMGET and writes both with one HSET.
// The prefix is "ephemeral" unless [WithKeyPrefix] says otherwise; it may not contain '{' or
// '}'. In the ID and the tenant the bytes '%', ':', '{' and '}' are percent-escaped, so no two
// pairs share a key and the hash tag is always the whole "<id>:<tenant>". A stored entry is
// "<version>|<createdAt>|<updatedAt>|<expiresAt>|" followed by the exact bytes the codec
// produced; the scripts never decode a value.
//
// # Scripts and clock
//
// Each operation is one Lua script (embedded from lua/, with lua/lib.lua in front), run with
// EVALSHA and loaded on NOSCRIPT. Every script takes the time from redis.call('TIME'): the
// Redis server is the one clock, so clients with skewed clocks agree on every expiry. Times
// have millisecond precision. A writing script first expires a bounded batch of due entries
// (each with an expire event), so that expired entries never count against MaxEntries, then
// checks the condition and the capacity, bumps the tenant's version counter, writes the
// state, the expiry set and one event, trims the stream (by MaxEvents on every write, by
// EventRetention from the event times, a bounded number at a time), and gives all three keys a
// Redis expiry of the latest live expiry plus the event retention (and a quarter of the
// retention as slack, so that it is rarely refreshed): a tenant that nobody uses any more
// disappears from Redis by itself. Get and Snapshot compare expiries with TIME, so an expired
// entry is never returned, reconciled or not. Snapshot returns the entries and the version of
// the same instant from one script; the entries are sorted in Go, in byte order.
//
// # Readers
//
// Subscribe reads the tenant's epoch and version (creating the tenant's meta when absent), so
// a subscription's start is fixed when Subscribe returns. All subscriptions of one tenant in a
// Backend share one pump goroutine: it runs the tick script (expire due entries, trim) and then
// one XREAD BLOCK with COUNT 100, and hands the events to every subscription. Each
// subscription keeps its own position and a buffer ([WithReaderBuffer]); one whose buffer is
// full is left behind without holding up the others, and catches up on its own with the read
// script (XRANGE after its position) until it reaches the pump again. The pump stops when its
// last subscription closes.
//
// Expiry promptness: the pump's XREAD blocks no longer than until the next due expiry (read
// from the expiry set against the server's TIME), after which the tick expires the entry and
// the expire event reaches readers at once, even in a tenant where nothing else happens. The
// block is also bounded by [WithMaxBlock] (1 s by default).
//
// Errors: a pump or a catching-up subscription retries failed Redis calls with backoff (10 ms
// doubling to 1 s); readers do not see the failure and resume from their own positions.
//
// # Overflow and reset
//
// A subscription whose position is older than the oldest retained event gets an overflow
// event {After: its position, FirstAvailable: the position just before the oldest retained
// event} and goes on from there. The tenant's meta holds an epoch, chosen (from
// runtime.NewEpoch, passed to every script as a candidate) by whichever script finds the meta
// missing; every cursor carries it. After a FLUSHALL, a restart without persistence or the
// expiry of an abandoned tenant, the epoch is new, and a subscription of the old epoch gets an
// overflow event with FirstAvailable in the new epoch. Pumps notice a new epoch on their next
// tick, at most the max block time later. A cursor of the current epoch beyond the tenant's
// last version is rejected with runtime.ErrInvalidCursor.
//
// # Cluster and failover
//
// The three keys of a tenant share a hash slot, so every script runs on one node of a Redis
// Cluster, and different tenants spread over the cluster. A pump reads from the master that
// owns its tenant's slot; go-redis follows MOVED and ASK redirections. On a failover
// (Sentinel or Cluster), calls in flight fail and the pumps and readers retry; with
// asynchronous replication the new master may lack the last writes. If it lost the tenant's
// meta, the epoch changes and readers get an overflow event; if it kept an older meta,
// versions may be reused, which readers that re-snapshot on overflow tolerate but cannot
// always detect. Use WAIT-style durability outside this package if that matters.
package redisstore
