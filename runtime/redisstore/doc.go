// Package redisstore is the Redis backend of ephemeral: a [backend.Backend] for state shared
// by many processes, on a plain Redis server, a Sentinel-managed one or a Redis Cluster.
// Users hand it to package ephemeral (github.com/ephemeral-go/ephemeral) and call nothing
// else of it but [New] and [Backend.Close].
//
//	client := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	b := redisstore.New(client)
//	defer b.Close()
//	store, err := presence.NewPresenceStore(b) // or ephemeral.New(b, cfg, opts...)
//
// [Backend.Open] binds the limits of a store ID within a Backend: the first Open of an ID sets
// them, a later Open of the ID with other limits fails (see [backend.SameLimits]). Limits are
// not stored in Redis: processes that share a store ID must agree on its limits.
//
// # Key layout
//
// Every (store ID, tenant) owns three keys in one hash slot:
//
//	<prefix>:{<id>:<tenant>}:state   hash: "k"+key -> stored entry, and the tenant's meta:
//	                                 "#epoch", "#seq" (last version), "#at" (its time), "#due",
//	                                 "#trim", "#kexp" (the Redis expiry of this hash and the
//	                                 set), "#sexp" (the stream's), and the readers'
//	                                 registrations "#w", "#wu", "#ws" (see Notices)
//	<prefix>:{<id>:<tenant>}:exp     sorted set: key -> expiry (Unix ms)
//	<prefix>:{<id>:<tenant>}:events  stream of events: one entry per script call, ID
//	                                 "<v>-<n-1>" for its n events of versions v-n+1 to v
//
// The meta lives in the state hash so that a write reads the meta and the old entry with one
// HMGET and writes both with one HSET.
// The prefix is "ephemeral" unless [WithKeyPrefix] says otherwise; it may not contain '{' or
// '}'. In the ID and the tenant the bytes '%', ':', '{' and '}' are percent-escaped, so no two
// pairs share a key and the hash tag is always the whole "<id>:<tenant>". A stored entry is
// "<version>|<createdAt>|<updatedAt>|<expiresAt>|" followed by the exact bytes the codec
// produced; the scripts never decode a value. A stream entry holds the epoch, the time and the
// events of one script call, the events in one field, each as "<kind> <n>:<key> <createdAt>
// <expiresAt> <n>:<value or reason>", the encoding of the notices (below), which the script
// then publishes as they are: one XADD per batch of writes however many events it has, and one
// encoding of the events for the stream and the notice (docs/PERFORMANCE.md has what it saves).
// The MaxEvents trim, part of the XADD, drops whole stream nodes ("MINID ~": an exact trim
// walks the first node's entries, those it marked deleted before too, at every call), so the
// stream may hold some versions more: at most a node of entries (stream-node-max-entries,
// stream-node-max-bytes; should both be 0, a node is unbounded, and the EventRetention trim,
// which is exact, bounds the stream). Readers count only the last MaxEvents as retained, as on
// every backend.
//
// # Scripts and clock
//
// Each operation is one Lua script (embedded from lua/, each with lua/check.lua in front, read
// and tick with lua/lib.lua too and, before all, the protocol's codes, field names and argument
// positions that the script names, as Lua constants made from the Go ones). On Redis 7 and
// later they are the functions of one library, "ephemeral_" and a hash of its code, called with
// FCALL; see "Functions" below. Every script takes the time from
// redis.call('TIME'): the Redis server is the one clock, so clients with skewed clocks agree on
// every expiry. Times have millisecond precision. A writing script first expires a bounded
// batch of due entries (each with an expire event; "#due" lets it skip this until the earliest
// expiry), so that expired entries never count against MaxEntries, then checks the condition
// (a failed one returns the key's version, for the [backend.ConflictError]) and the capacity,
// bumps the tenant's version counter, writes the events, the state and the expiry set, trims the
// stream (by MaxEvents in the same XADD; by EventRetention from the event times, a bounded number
// at a time), and gives the state hash and the expiry set a Redis expiry of the latest expiry
// written plus the event retention (with a quarter of the retention as slack, so that it is
// rarely refreshed), brought back to the latest live expiry's once a write finds that entry
// gone (removed, or written again with a shorter TTL): a tenant that nobody uses any more
// disappears from Redis by itself, a retention after its last entry's expiry. The stream has
// an expiry of its own, a retention after its last event (with the same slack; "#sexp" in the
// meta), so that a tenant left alone with an entry of a TTL much longer than the retention
// does not keep up to MaxEvents events past it, which the trims, run by writes and ticks, would
// not drop: once the stream is gone, a reader from an older version gets an overflow, as it
// would from a stream trimmed by retention, and the next write or tick that adds events makes
// it again, at the next version of the same epoch. (Writers of a version of this package from
// before "#sexp" renew the stream's expiry only with the other keys': in a rolling deploy, a
// stream may then expire before its retention is over, and a reader behind gets an overflow,
// never a gap.)
//
// Upserts, touches (quiet ones too) and removes are one write script, which applies a batch of
// them in order, each with its own result, version and event, and validates the whole batch
// before its first write. A write that finds fewer than two calls of its tenant in flight, each
// a write alone, runs at once on the caller's goroutine, one script call under the caller's
// ctx, as any go-redis command (whose deadline bounds the call as the client's
// ContextTimeoutEnabled says); one whose ctx has ended is not sent. Writes that arrive
// otherwise wait, and go in their order, up to 64 per call (group commit), in two places in
// flight at most, which share them: a call that ends takes what waits unless that is fewer
// than half of what the other carries (then the other takes it when it ends), and the second
// place opens when that many wait. Without that sharing a writer that found a place free went
// alone again and again while the others waited in one large batch (a script call carried 2.4
// to 9.6 writes at 32 in flight; 15 with it, BenchmarkUpsert). A waiting write returns when
// its batch is applied or its ctx ends, and is not sent if its ctx ended first. Two calls in
// flight keep both sides busy, the server running one batch while the client completes the
// other and gathers the next; they may take effect in either order, which is one their callers
// could have seen, as neither had returned when the other was made (the calls of one goroutine
// stay in its order). A TouchMany joins the same queue with its touches in groups of up to 64,
// each of which goes whole in one call (atomic and in order), the next once the one before is
// done; when it finds a place free it sends its group itself, as a drain would (unless the
// place in flight carries more than twice what waits, which then waits for it): renewing a
// room of ten keys so took 0.23–0.31 of the client's CPU and 0.37–0.51 of the server's that ten
// calls of Touch at once took, a room at a time, and 0.46–0.52 and 0.60–0.72 with 32 rooms in
// flight (BenchmarkTouchMany, docs/PERFORMANCE.md). A TouchMany of thousands of keys is as many
// calls of 64 in a row, between which the tenant's other writes go on.
//
// The script calls of all tenants then share a pipeline: a call with fewer than four of its
// node in flight (the server's; in a cluster, its tenant's master's), each a call alone, goes
// at once, on the goroutine that makes it; those that arrive otherwise wait, and go together,
// up to 64 in one pipeline, when one in flight ends (shared between the four places as a
// tenant's writes are between their two). Each is still a script of its own, but a pipeline
// shares a round trip and the system calls on both sides, which are much of a write's cost when
// many tenants are written at once; a slow master holds up only the writes to its own slots.
// The write script stands alone, without lib.lua, because every call runs a script from its top
// and each function a script defines is made anew per call.
//
// # Functions
//
// Every EVALSHA pays for the size of the server's script cache, which Redis before 7.4 never
// empties by itself: each cached script stays in the one Lua interpreter that EVAL runs in. On
// Redis 7.0.15 on 2 cores, an EVALSHA of 'return 1' took 0.5–0.6 µs of server time with a
// few scripts cached, 3.4 µs with 10,000 and 4.5 µs with 20,000, and a write of this package
// 16 µs with a few against 44 µs with 20,000 (docs/PERFORMANCE.md; where the time goes inside
// the interpreter was not traced). A server that other programs use can be like that: one that
// sends EVAL with a script text of its own per call fills the cache. A Redis 7 function runs
// in an interpreter of its own, and its calls cost the same whatever the cache holds.
//
// So a Backend calls its scripts as the functions of a library (FCALL), which it loads
// (FUNCTION LOAD; on every master of a cluster) when a server answers that it has no such
// function: the first call on a new server, and after FUNCTION FLUSH, a restart without
// persistence or a new master. The library's name holds a hash of its code, so the libraries of
// other versions of this package sit beside it, each used by its own version; delete the ones
// no process runs any more with FUNCTION DELETE (a Backend whose library was deleted loads it
// again). Like any function library, it is kept in the server's RDB and AOF and replicated.
// Where the server has no functions (Redis before 7, emulations such as miniredis), the
// client's ACL user may not run FCALL or FUNCTION LOAD, or the library does not load, the
// Backend runs the scripts with EVALSHA from then on (EVAL, which caches the script, on
// NOSCRIPT), as before; then watch INFO memory's number_of_cached_scripts, and SCRIPT FLUSH
// empties the cache. A load that a server refuses for now (out of memory, loading its data, a
// replica, the cluster down) does not put FCALL out: the calls go with EVALSHA until a load
// takes. A Backend loads the library at most once a second: in between, a call that finds no
// function goes with EVALSHA (a cluster's node importing a slot serves it through ASK
// redirections before a load of the masters the client knows reaches it, and every call would
// otherwise load some 50 KB on every master). A call is sent again only when the server refused
// it before it ran. go-redis sends a command again when its connection fails or its read times
// out (Options.MaxRetries), which would run a write twice if the first run's reply was lost: a
// Backend tells it not to for writes, so a write never runs twice, and one whose reply is lost
// returns the connection's error, after which it may or may not have been applied. (Reads,
// which change nothing a second run would see, are sent again as go-redis does.)
//
// On a server out of memory (maxmemory, noeviction), a write is refused as a whole with an
// OOM error, and the rest goes on: Get (its function is flagged no-writes); the reads of
// snapshots and readers (read.lua and open.lua are flagged allow-oom: they write only a
// missing meta, a few bytes; such a server refuses a MULTI whole, reads too, so a snapshot's
// TIME and HGETALL and a pump's read, transactions otherwise, are sent again alone and as
// read.lua); and the pumps' ticks (flagged allow-oom), which expire the entries that are due,
// with their events, and so free their memory. (With EVALSHA a write or a tick runs up to its
// first command that may take memory, which fails it.) Keep the server at
// noeviction, Redis's default: every key of a tenant has a TTL, so an allkeys-* or volatile-*
// policy may evict one of them and not the others. The loss of the state hash or the stream is
// detected (a new epoch, an overflow); an expiry set lost alone is made again from the entries'
// expiries in the state hash (check.lua's restore_exp) by the first write that finds it
// missing, or the first tick when an expiry is due: until then the entries get no expire events
// and the MaxEntries check does not count them (Get and Snapshot hide them once due). A key
// lost alone and made again by a call gets its TTL in that call, so nothing is left without
// one. When a Backend opens its first store, it reads the policy of every master (CONFIG GET,
// where the server allows it) and reports one that is not noeviction to its observer, as an
// error of call config.
//
// Get and Snapshot compare expiries with TIME, so an expired entry is never returned,
// reconciled or not. Snapshot reads the entries, the version and TIME in one MULTI/EXEC
// transaction, as atomic as a script but without copying 10,000 entries through Lua. The client
// reads HGETALL's reply as its bytes, into a buffer it reuses with the slices it decodes the
// live entries in, in one pass, without a string per field or a map; they are sorted in Go, in
// byte order (Lua compares strings by locale), as integers that pack each entry's index with
// the first bytes where the keys differ (a radix sort). A tenant without meta gets one from the
// script that opens readers, and is read again, unless it had no state at all and the script
// finds no write in its epoch: then it is empty at version 0. Concurrent snapshots of one
// tenant and prefix share reads: one that finds another in flight waits for it, and then shares
// the next read with every other that waited, each with entries of its own. The store keeps the
// bytes of each value its snapshots read, for up to 65,536 values over its tenants: a later
// snapshot that reads the same bytes for a key hands out the bytes kept, read-only as on
// memstore, and copies only the values that changed (in one allocation); from the second such
// read it also hands out a memo (see [backend.Entry.Memo]): the typed layer then clones the
// value it decoded instead of decoding it again.
//
// # Readers
//
// Subscribe reads the tenant's epoch and version (creating the tenant's meta when absent), so a
// subscription's start is fixed when Subscribe returns. The read is lua/open.lua, which stands
// alone as the write script does; one with no other of its node in flight is sent at once, and
// those that arrive while one is in flight wait and go together, whatever their tenants, up to
// 64 in one pipeline, with one script call per tenant whose result the tenant's subscriptions
// share (each was asked for before the call was sent, so it is as fresh as one of its own; in a
// cluster, the pipelines are by master, as the writes' are). A Subscribe without a cursor in a
// tenant whose pump is live needs no read: a pump that has seen the tenant's head in Redis (a
// check found it there, or it read up to it) since it was made and since the pub/sub connection
// was last lost, with no failure or junk pending. The start is then the pump's head or the last
// version a write of this Backend returned, whichever is later, so every write of this process
// that returned before Subscribe was called is behind it; a write of another process that the
// pump has not heard of yet may be delivered although it returned before (and a tenant made
// anew by another process comes as an overflow). When this Backend's writes are of another
// epoch than the pump's, or of several, or may be of a history that is gone (one returned while
// the read of the pump that found the tenant went back was out, or was sent before that read
// and returned after it), Subscribe reads. The pump forgets the versions of the writes that
// returned before such a read, or any read it delivered up to the head it read, was sent, which
// are in Redis or gone, so Subscribe needs no read again once the pump has read since the last
// such write returned and the writes after it are of the pump's epoch. A Subscribe after a
// cursor needs no read either when the pump is live and the cursor is of its epoch and not
// beyond that start (a reader after a snapshot); a cursor of another epoch, or beyond, is read,
// and a reader that finds a new epoch so nudges the pump (its readers get their overflow then,
// not at the next poll).
//
// All subscriptions of one tenant in a Backend share one pump, which reads the tenant's events
// (see below) and appends them to the tenant's shared log (a [backend.Log] of the latest
// [WithReaderBuffer] events, none older than 10 s), which wakes the waiting subscriptions, each
// with a signal to its own [backend.Waiter]. Each subscription keeps its own position in the
// log and receives the log's event itself, not a copy; the typed API decodes it once for all of
// them. One that falls out of the log's window is left behind without holding up the others,
// and catches up on its own with the read script (XRANGE after its position) until it is back
// within the log. An event that the stream has since dropped (MaxEvents newer versions exist)
// is not delivered: the reader gets the overflow it would get reading the stream, as on every
// backend. When the pump sees a new epoch or the state going back, it closes the log and starts
// a new one: every reader then checks its position against Redis. The pump stops when its last
// subscription closes.
//
// A pump blocks on nothing in Redis, and holds a goroutine only while it has a read or a tick
// to do: the pump of a tenant whose notices carry its events needs none, and until an expiry
// falls due a timer waits for it, not a goroutine (10,000 tenants with a reader and an entry
// held 10,000 goroutines more when their pumps waited on goroutines). Every script that adds
// events (the write script, and the tick script when it expires entries) publishes a notice,
// when another Backend has readers of the tenant (see Notices below), on the tenant's channel,
// named as its events stream (so it has the tenant's hash tag): "<epoch> <last version> <ms
// until the next expiry>", followed, if the script added events, by their time and, if they
// fit in 64 KiB, the events, as their stream entry holds them. The Backend
// subscribes the channels of the tenants that have readers: the changes made while one is
// written go together in the
// next write, one SUBSCRIBE (and one UNSUBSCRIBE) for all of them, so that opening many
// readers at once costs a few writes; Subscribe returns once its SUBSCRIBE is written, without
// waiting for the confirmation, and closing a tenant's last reader returns at once, its
// UNSUBSCRIBE written by a goroutine of the hub, with those of the closes that follow it while
// it writes. A notice
// whose events continue the pump's log (the same epoch, the first event right after the pump's
// last version, no read of the pump in flight) has them appended to the log by the goroutine
// that receives it, without a read of Redis: a reader gets an event one pub/sub message after
// the write. The events of the Backend's own writes are appended the same way when the writes
// return (each write's reply holds what its event needs), so its readers need no notice of
// them, and get none (see Notices); a batch whose script also emitted an expiry makes the pump
// read. Any other notice of events the pump has not delivered (a gap, a new epoch, a
// notice without events or with junk, one during a read) makes the pump read them: one
// MULTI/EXEC on the command pool (XRANGE after its last version, about 100 events, with the
// tenant's meta and TIME). Notices that arrive while a read is in flight make one more read, so
// a busy tenant that the notices cannot serve costs one read per batch, not per event. No
// script runs before a read. The stream stays the source of truth: readers that catch up, and
// pumps that missed a notice, read it. Anyone who can publish on the channel can forge events
// that continue the log, as anyone who can write the tenant's keys can.
//
// Expiries: the reads and notices tell the pump when the tenant's next expiry is due, and a
// timer of the pump (on the local clock, set from the server's "now" and due time in the same
// reply) runs the tick script then: it expires the due entries (each with an expire event),
// trims the stream, keeps the keys alive and publishes a notice for the other Backends, and the
// pump reads the expire events at once. Expire events reach readers within a few milliseconds
// of ExpiresAt, whatever Redis's hz. Several processes with readers of one tenant each tick at
// the due time; the first expires the entries, the others find nothing to do.
//
// Lost notices: each confirmed subscription of a channel, the first one and those after
// go-redis dialled a lost pub/sub connection again, has the tenant's epoch, version and the
// time of that version checked (HMGETs pipelined for many tenants at once, which renew the
// Backend's registrations too, see Notices), and the pump reads the tenant if they are not
// what it has seen: notices
// published before the subscription took effect, or while the connection was down, are made
// up for. A connection silent for a second is pinged, and
// replaced if it stays silent or the server refuses a subscription. A connection can answer
// the pings and still get nothing published (its node has left the cluster, by CLUSTER RESET
// or a scale-in's del-node, or the cluster's bus is cut): at every poll, but no more often
// than every 5 s, the Backend publishes a number on a channel of its connection's own, through
// the command pool, and replaces the connection, as a lost one, when that number has not come
// by the next (a PUBLISH the server refuses leaves it unjudged). The same check runs for
// every tenant with readers every poll interval ([WithPollInterval], 10 s by default), which
// bounds how soon the readers of a tenant where nothing is written notice that its state was
// lost; it also ticks a tenant whose expiry is due by the server's clock if the pump's timer
// has not (clocks that drift). It also bounds how late other processes' readers get the
// changes of a client whose ACL user may not publish on the tenants' channels (a new user of
// Redis 7 may use none unless given them, such as &<prefix>:*; acl-pubsub-default
// resetchannels): its writes and ticks are applied as any others, their PUBLISH refused (the
// scripts call it with redis.pcall, last), so the readers of other processes have only the poll.
//
// Errors: a pump or a catching-up subscription retries failed Redis calls with backoff (10 ms
// doubling to 1 s); readers do not see connection errors and resume from their own positions.
// A pump whose reads or ticks keep failing for 2 s with an error that retrying does not fix (a
// script error, junk in the tenant's keys) gives each of its readers that has no event to read
// an error from Next that wraps [ErrFeed] (once per failed retry), and keeps retrying; a
// catching-up reader whose own reads fail that way for 2 s gets such an error too. Junk in the
// stream is no such error: see below.
//
// # Notices
//
// A write publishes its notice only if a Backend other than the writer's has readers of the
// tenant: a process's readers get the events of its own writes from the writes' replies, so
// with one process nothing a write does is published, and with several, a write to a tenant
// that no other process watches publishes nothing (in a cluster, whose bus carries every
// notice to every node, nothing crosses the bus). Its measured effect is in docs/PERFORMANCE.md.
// Each Backend has a random watcher ID, which the script that opens its readers (open.lua)
// registers in the tenant's meta for a minute, or six poll intervals if longer: as the tenant's
// watcher ("#w", until "#wu") if it has none, or if it is this Backend or one whose time is up;
// otherwise as one of the others ("#ws": until then another Backend watches too). The checks
// of every poll renew a registration with less than half of its time left, with the same
// script. A write reads the three fields with the rest of the meta and publishes if "#ws" is
// not past, or "#wu" is not past and "#w" is another Backend's (a field that is no number
// counts as not past); the first write of a new epoch (a state made anew, whose registrations
// went with it) publishes whatever they say. The tick script publishes by the same rule (the
// ticking pump reads the entries it expired itself). A write's
// reply ends with what its notice would tell the writer's own pump: the first and last
// versions the batch made, and the time until the tenant's next expiry. The pump appends the
// batch's events when they continue its log, holds those of a batch whose reply came before
// an earlier one's until that one's come (two calls of a tenant may be in flight), reads when
// the script made versions the writes do not tell (an expiry) or a call failed (it may have
// been applied), and sets its expiry timer from it. The write then lets the readers it woke,
// if there are at most four, run before it returns (see backend.Handoff): a reader in the
// writer's process gets the event before the write returns, where it came 25-30 µs after,
// when the writer next blocked.
//
// A notice too many costs a message; one missing only delays: a registration that lapsed (the
// Backend's checks failed for half of its time, with Redis unreachable) makes the writes of
// the other Backends publish nothing until the next check renews it, and that check finds
// what they wrote meanwhile: their events reach its readers at most a poll interval late.
//
// # Connections and pool size
//
// A Backend uses two kinds of connections. Its pub/sub connection is its own, outside the
// client's command pool, made with its first reader: one connection to the server (standalone, or
// the master a Sentinel names) or to one master of a Redis Cluster, where a PUBLISH reaches the
// subscribers of every node (the master of its probe channel's slot, as the client's slot
// map has it; see Lost notices). That is the only connection that waits, however many tenants and
// readers a process has. Everything else, writes, Get, Snapshot, Subscribe's reads (one pipeline
// per node for those in flight at once) and the pumps' reads, checks and ticks, is a short
// command on the client's pool, returned to it at once: no connection is held while waiting for
// events, so opening a reader never waits behind another tenant's blocking read (in a burst of
// opens, it waits for the pipeline in flight). At most 8 pump calls of a Backend are in flight at
// once, so a burst of notices never takes the whole pool from writes and new readers.
//
// Size PoolSize for the commands in flight at once: the writes take at most four connections per
// node (see above), whatever the number of tenants written at once; then Gets and Snapshots, plus
// the pumps' reads, which come in bursts when many tenants are written at once (the Snapshots of
// one tenant and prefix share reads: one connection at a time for each). go-redis's default (10
// per CPU) suits most processes; with hundreds of Gets and Snapshots of different tenants at
// once, more connections cut the wait for one (PoolTimeout bounds it). The pipelines and
// MULTI/EXECs among these (snapshots, the pumps' reads, the pipelines of writes and of opens)
// take a connection of go-redis's pipeline pool first (PipelinePoolSize, 10 by default, 128
// KiB buffers; a pipeline that finds it busy takes one of the command pool at once), so a
// busy process may hold up to PoolSize + PipelinePoolSize command connections to a server,
// and the pub/sub one.
//
// Memory: a reader of a tenant that has no other reader in the process holds about 1.5 KB of
// heap, its tenant's pump and log and its subscription (BenchmarkOpens' heap-B/reader: 1.47 KB
// on 2026-12-07, where it was 2.06 KB that morning; a pump makes what its goroutine needs only
// when it first runs, which an idle tenant's never does), and a typed Reader of package
// ephemeral about 70 bytes more; a goroutine waiting in its Recv holds about 4.7 KB more, of
// which a 4 KB stack (it outgrows a goroutine's first 2 KB). Where page faults are slow,
// touching that memory the first time is a good part of the CPU of an open, and the reader's
// goroutine more: in the load test's tenants scenario, opening 10,000 readers with a goroutine
// each cost 62–70 µs of the process's CPU an open, without the goroutines 31–41 µs, most of
// the difference the fresh pages of their stacks (docs/PERFORMANCE.md, "What the reader
// goroutines cost the opens").
//
// A process that opens thousands of readers at once (a server that starts with many rooms'
// streams, say) grows its heap from a few megabytes, and the opens' latency tail is mostly the
// Go garbage collector's: it collects every time the heap doubles, and the opens that allocate
// while it marks help it mark. In the load test's tenants scenario (10,000 opens, 32 in
// flight), the open p99 was 4.3–5.5 ms with the default GOGC of 100, 3.7–4.1 ms with
// GOGC=200, 3.1–4.1 ms with 400 and 1.7–2.8 ms with the collector off (docs/PERFORMANCE.md,
// the run of 2026-12-07 18:09): such a process may raise GOGC, at the cost of a heap that
// grows further before each collection.
//
// Why pub/sub and stream reads rather than a blocking XREAD: an XREAD BLOCK holds a connection
// per call, and one over many tenants' streams must be remade for every tenant that gains or
// loses a reader and cannot span hash slots; a notice carries a copy of the events at most, and
// the events themselves stay in the stream, read by position, so a lost notice delays events
// but never loses them. In a cluster, the cluster bus carries each notice to every node (one
// small message per node and write batch of a tenant with readers in another process; see
// Notices). Sharded pub/sub (SPUBLISH, SSUBSCRIBE on each master) would keep a notice in its
// shard, but go-redis subscribes all the shard channels of a connection again in one SSUBSCRIBE
// when it redials, which a cluster refuses (CROSSSLOT) for channels of different slots.
//
// # Metrics
//
// [WithObserver] reports to a [backend.Observer] (such as the Prometheus adapter,
// github.com/ephemeral-go/ephemeral/metrics/prom) the events each reader gets and their age,
// the readers it opens and closes, the catch-up reads of readers that fell behind their pump,
// the size of every write batch, the writes refused (a condition that did not hold, a tenant
// at capacity), the entries the pumps' ticks expire, and the failed Redis
// calls by script or command (write, get, read, open, tick, snapshot; and, with no store or
// tenant, as they serve all: poll, the periodic check of the watched tenants, pubsub, the
// pub/sub connection lost or refused, and config, a server that may evict keys), those that
// the retries above hide from readers among them, and the tenants whose state Redis lost: a
// write that finds its tenant in a new epoch sooner after this store's last write to it than
// the tenant's keys could have expired (their event retention) reports it, once per process
// that had written the tenant, whether or not a reader is open, unless another tenant of the
// store took the tenant's slot (one of 4,096, by a hash of the name) since that write.
// Tracing of the Redis commands themselves is go-redis's: add a hook to the client (for
// OpenTelemetry, github.com/redis/go-redis/extra/redisotel).
//
// # Junk in the keys
//
// Another program, a bad deploy or a manual fix can leave junk in a tenant's keys. Redis does
// not roll back a script that fails half-way, so every script first reads and checks all it
// needs (lua/check.lua, in front of every script): the meta, the stored entries of the keys it
// touches, the scores of the due members of the expiry set, the type of a key it writes after
// its first write. Junk, or a key of the wrong type, fails the call before its first write
// with an error wrapping [backend.ErrCorrupt] (ephemeral.ErrCorrupt), which names the key and
// field and quotes at most 64 bytes of the junk. A stream entry ahead of the tenant's version
// (an XADD with an automatic ID) fails writes the same way: the refused XADD is a script's
// first write. Get fails for a malformed entry of its key only; Snapshot for a
// malformed meta or entry. Stream entries that are not events are never an error: the trim
// drops them as old ones; a reader skips one that stands for a version (or a gap in the
// versions) with an overflow event, so that it re-snapshots, and passes one that is no
// version; the pump reads on after them and makes its readers catch up from Redis. When the
// meta is junk (as a pump's read, or a write of the backend, finds), a reader's Next returns
// the ErrCorrupt error rather than waiting, and reads again on the next call. The tenant works
// again once the junk is removed (HDEL, ZREM, or DEL of the stream or of a key of the wrong
// type: XDEL does not lower a stream's last ID) or the tenant's keys expire.
//
// # Overflow and reset
//
// A subscription whose position is older than the oldest retained event gets an overflow event
// {After: its position, FirstAvailable: the position just before the oldest retained event} and
// goes on from there (see [backend.Overflow]). The tenant's meta holds an epoch, made by
// whichever script finds the meta missing (and drops what is left of the tenant's other keys):
// the server's time (TIME) in 12 hex digits of milliseconds, then the random digits of a
// candidate from [backend.NewEpoch] that the client passes, so that a later epoch of a tenant
// sorts after an earlier one unless the server's clock went back (a restart on another machine,
// a failover to a replica whose clock is behind). Every cursor and every stream entry carries
// it, as does every entry that Get, Snapshot and the writes return. After a FLUSHALL, a restart
// without persistence, the expiry of an abandoned tenant or the eviction of its state hash, the
// epoch is new, and a subscription of the old epoch gets an overflow event whose FirstAvailable
// is in the new epoch. A pump notices a new epoch with the next notice (a write publishes it),
// at most the poll interval later, or at once when a subscriber or a catching-up reader has
// seen the new epoch first (it nudges the pump). A cursor of the current epoch beyond the
// tenant's last version is rejected with [backend.ErrInvalidCursor].
//
// # Cluster and failover
//
// The keys of a tenant share a hash slot, so every script and transaction runs on one node of a
// Redis Cluster, and different tenants spread over the cluster. A go-redis Ring, which shards
// on the client, is refused (New panics): it subscribes every channel on the shard of the
// first, so the notices of tenants on its other shards would never arrive. A pump reads from
// the master that owns its tenant's slot; go-redis follows MOVED and ASK redirections. On a
// failover (Sentinel or Cluster) the calls in flight fail: writes return the error (a write may
// or may not have been applied, as with any Redis call), pumps and readers retry with backoff.
// A cluster client learns the new master of a slot when it reloads the cluster's slots:
// go-redis does on a MOVED reply and every ClusterOptions.ClusterStateReloadInterval (60 s by
// default), and a master that died answers nothing, so the backend has the client reload them
// whenever a call of its own (a write, a read, the poll, the pub/sub connection) cannot reach a
// node: the calls to a master that died fail until its replica takes over (the cluster's
// cluster-node-timeout and election), not a minute more. The application's own calls on the
// client benefit too. A write to a slot that is being migrated key by key may fail with
// TRYAGAIN, before it ran. With asynchronous replication the new master may lack the last
// writes: if it lacks the tenant's meta, the epoch changes and readers get an overflow; if it
// has an older meta, its versions go back and are issued again, for other events. A pump finds
// that out on its next read or check (a notice, a write of this backend, the poll of
// WithPollInterval, a new pub/sub connection): by the tenant's last version, lower than the
// pump's head or than a version this backend's write returned, or, once the new master's writes
// have passed the head, by its time: the tenant's meta holds the server's time of the call that
// made its last version, and each event the time of its call, so the same version at another
// time is another history. Then every reader of the tenant reads again from the first version
// Redis keeps, after an overflow (a cursor beyond the last version is rejected with
// backend.ErrInvalidCursor by Subscribe), so a replica that re-snapshots on overflow stays
// right. The time tells the histories apart when their writes were made in different
// milliseconds by the servers' clocks, once the pump has delivered an event (a state written by
// an older version of this package has no time, and proves nothing), and while the stream holds
// the event at the pump's head when it reads: a new master that wrote about MaxEvents versions
// before the pump heard of it (its notices lost while the pub/sub connection was dialled again)
// may have trimmed that event and kept the next, which then passes for the one that follows,
// and the readers miss the rollback for good. Replicas are never read.
package redisstore
