// Command loadtest measures an ephemeral backend at scale: throughput, snapshot time, event
// delivery latency, expiry promptness and fan-out to many readers. Run it against your own
// Redis server, or the in-memory backend:
//
//	go run ./examples/loadtest -redis 127.0.0.1:6379
//	go run ./examples/loadtest -memory
//
// On Redis, every key of a run carries a prefix of its own ("loadtest-<random>") and is
// deleted at the end (SCAN and UNLINK of the prefix), and every connection carries the client
// name "ephemeral-loadtest-<random>". The run leaves nothing behind, but it does load the
// server: do not point it at a production server under load. It never flushes anything.
//
// # Scenarios
//
// The scenarios run one after the other, each row bounded by a count and by -max-time; a row
// cut short says so in its notes. -run selects scenarios by name.
//
//   - throughput: -n upserts, then -n touches (non-quiet, so each makes an event) of 1,000 keys
//     of one tenant, sequentially (c=1) and from -c goroutines, each call timed, after -max-events
//     untimed upserts from -c goroutines: every key exists, and every timed write trims the
//     stream, as the writes of a tenant that has lived a while do. On Redis the
//     baseline row "SET PX" runs -n raw go-redis SET key value PX 60000 of the same encoded
//     value with the same concurrency, and every row reads INFO commandstats before and after
//     (SET for the baseline; FCALL, EVALSHA and EVAL for the store) and INFO cpu: srv µs/call
//     is the server's time per call of those commands, calls/op how many calls one operation
//     took (concurrent writes to one tenant, upserts, touches and removes, are batched into one
//     script call, so below 1), srv cpu µs/op the server's CPU time per operation.
//   - snapshot: for each of -snapshot-sizes, fills a tenant with that many entries (MaxEntries
//     raised to match) and times Snapshot of all of it into a new slice, and AppendSnapshot
//     into the slice of its last call ("slice reused"), 3 to 20 times each; on Redis beside
//     the baseline of a raw HGETALL of the tenant's state hash. The rows alternate, a call of
//     each in turn, so that they meet the same machine.
//   - delivery: one reader of a tenant; -events upserts from one writer at -rate per second,
//     then from one writer flat out, then from -c writers flat out. For each event, the time
//     from its Upsert's return to the reader's Recv of it (0 when the event came first), and
//     ("from call" in the notes) from the start of its Upsert call. The reader is on the
//     writer's backend, which hands it the events of the writes' replies; on Redis two more
//     rows, "reader apart", put it on a backend and go-redis client of its own, as in another
//     process, which gets them from the writes' notices (one writer at -rate, and flat out).
//     With -nats, two more rows do the same on a NATS JetStream key-value bucket for
//     comparison: a bucket of a unique name ("loadtest-<random>", memory storage, history 1,
//     deleted at the end), -events Puts of the same encoded value to the same 1,000 keys from
//     one writer at -rate per second and flat out, each timed from Put's return to the receipt
//     by one watcher (WatchAll, updates only) on a connection of its own, which decodes the
//     value as a reader does; and from the start of the Put call. When no JetStream server
//     answers at -nats, one row "nats kv watch" says it was skipped, and why.
//   - expire: one reader of a tenant where nothing else happens; -expire-keys keys written
//     at once with TTLs of -expire-ttl, -expire-ttl+37ms, ... (so that the expiries fall at
//     different moments of the server's event loop). For each key, the time from its expiry
//     to the reader's Recv of its expire event. The expiry is taken as the middle of the
//     Upsert call plus the TTL on this machine's clock: the server's clock sets ExpiresAt,
//     so this is right within half a round trip (and Redis's millisecond), whatever the skew.
//   - fanout: for each of -readers, that many readers of one tenant in this process, each in
//     its own goroutine, and -fanout-events upserts at -rate per second, from 4 writer
//     goroutines, each upsert at its own time (one writer alone could not keep the rate on
//     Redis behind 10,000 runnable readers).
//     Every reader counts its events (count and per s are deliveries; cpu µs/op is the
//     process's CPU per delivery), and the first 100 readers also time each of theirs, as in
//     delivery, for the latencies: a clock reading and a histogram update per delivery at
//     every reader cost as much as the delivery, and the row would measure them. It
//     samples CLIENT LIST and the Go memory every 250 ms: the run's connections, those whose
//     last command was XREAD (the readers' blocking reads) and those blocked at the moment,
//     the heap in use and the memory the Go runtime holds from the system; and the heap per
//     reader with the readers open and nothing written yet. A paced writer that could not
//     keep 90% of -rate over a row of a second or more (its calls wait for a CPU behind the
//     readers) adds writer=<upserts/s> to the notes: the latencies are those of that rate.
//   - tenants: -tenants tenants (10,000) with one reader each, all on one backend and, on
//     Redis, on one go-redis client with the default options (its default pool; a client name
//     of its own, "<run's name>-tenants"). First -events upserts from 8 goroutines, spread over
//     the tenants with no reader open, twice: the first warms the tenants and the client's pool
//     up and is not reported, the second is the baseline. Then a reader is opened in each tenant
//     from -c goroutines, each open timed, and each reader receives from a goroutine of its own
//     from when it opens, as an application's would (10,000 of them started at once after the
//     opens held up the first of the upserts after them); then -events upserts again, every
//     other one to a watched tenant (t-0, t-1, ...) and the others to as many tenants nobody
//     watches (u-0, u-1, ...). Every event of a watched tenant is counted at its reader, with
//     its delay after the upsert returned, until all have come or -max-time has passed (the
//     rest are missing); then the readers are closed. While the readers are open it samples
//     CLIENT LIST every 250 ms for the client's connections: blockingConns is the most seen at
//     once whose last command was a blocking read or a subscription (XREAD, SUBSCRIBE,
//     SSUBSCRIBE, PSUBSCRIBE...) or that are in subscribed mode. A failed upsert or reader open
//     (such as a pool timeout) is counted in the notes, not fatal. The row of upserts with the
//     readers open carries the summary: putP99UsNoReaders, putP99UsReaders, readerOpenP50Us,
//     readerOpenP99Us and, on Redis, blockingConns. The row of opens carries gcCycles and
//     gcCpuUsPerOp, the garbage collections that ran during the opens and their CPU time an
//     open (runtime/metrics): the tail of the opens is theirs.
//
// # Output
//
// A table on stdout (JSON with -json), one row per measurement, and progress on stderr while
// it runs: one line kept up to date on a terminal, a plain line per row otherwise. The header
// names the target, the Go version, the CPUs, the load average at the start (/proc/loadavg) and
// the time of one system call on this machine (syscallNs in the JSON) and of one page fault on
// fresh memory (pageFaultNs, Linux only): figures taken on a busy machine are not comparable,
// and those of a machine whose system calls are slow (as this project's test machine's were
// after a reboot) are higher for every row that waits on a socket, as those of one whose page
// faults are slow are for every row whose process or server grows its memory (the tenants
// scenario's opens, the presence runs); compare runs of different machines by their ratios to
// the baselines of the same run.
// Columns:
//
//	scenario       the row
//	count          calls, snapshots or events received (readers × events for fan-out)
//	per s          count per second of the row's wall time
//	p50 p99 max    latency of a call, a snapshot, or an event's delivery or expiry; the
//	               percentiles come from a log-linear histogram, within 3% above
//	cpu µs/op      this process's CPU time (user and system, getrusage) during the row per
//	               count: unlike the latencies, it hardly depends on what else loads the machine
//	srv cpu µs/op  Redis: the server's CPU time (used_cpu_user + used_cpu_sys of INFO cpu)
//	               during the row per count; all the server did, so use a server of your own
//	srv µs/call    Redis: server time per call of the row's command, from INFO commandstats
//	               (which counts the commands a script calls again, on their own lines)
//	calls/op       Redis: calls of that command per operation
//	notes          from call: delivery and NATS rows, p50 and p99 of the delay from the
//	               start of the write call to the receipt (the write's round trip and the
//	               delivery, which no event beats; -json: sinceCallP50Us, sinceCallP99Us);
//	               early: events recorded as 0 because they came before the call they are
//	               timed from returned (common for the NATS watcher, whose message often comes
//	               before Put's acknowledgement); blockingConns, conns, xread and blocked
//	               (CLIENT LIST), errors of failed calls with the first one, heap and sys
//	               memory, idle heap per reader, events missing at the time limit, overflow
//	               events, rows cut short
//
// # Flags
//
//	-redis addr        standalone Redis server to test; without it, the in-memory backend
//	-nats addr         NATS JetStream server of the KV watch rows; without it, no such rows
//	-json              JSON output
//	-c 32              goroutines of the concurrent rows
//	-n 20000           calls per throughput row
//	-snapshot-sizes    entries of the snapshot rows (1000,10000,100000)
//	-rate 1000         upserts per second of the paced writers
//	-events 2000       upserts per delivery row
//	-expire-keys 40    keys of the expire row
//	-expire-ttl 300ms  TTL of its first key
//	-readers           readers of the fan-out rows (1000,10000)
//	-fanout-events     upserts per fan-out row (2000)
//	-tenants 10000     tenants with one reader each of the tenants scenario
//	-max-events 50000  events each tenant keeps (Limits.MaxEvents)
//	-max-time 30s      time limit of each row
//	-run regexp        scenarios to run
//	-scale f           multiplies every count above but -c and -rate (-scale 0.01: a quick look)
//	-cpuprofile file   CPU profile of the whole run
//
// docs/PERFORMANCE.md has the figures of a run on a small machine and what they show.
// floors.sh, beside this file, runs this tool, the packages' benchmarks and (PRESENCE=1) the
// presence example's load runs on a redis-server of its own, and prints every figure the
// project has a target for beside its baseline, round by round, with how many rounds met it,
// and the time of one CPU-bound loop on each CPU at the start of each round (the CPUs of a
// virtual machine may differ for minutes).
package main
