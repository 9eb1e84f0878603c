#!/usr/bin/env bash
# floors.sh measures every figure that issues 15 and 16 set a floor for, each beside its
# baseline in the same run, and prints one line per floor: the figure of each round and how
# many rounds met it; below the table, the cost of a system call and of a page fault in each
# round, as the load test measured them (they move many rows: see examples/loadtest's doc), and
# the time of one CPU-bound loop on each CPU at the start of each round. It exits with 1 when a
# run failed (its rows are then empty or short), after the table.
# It runs the benchmarks of runtime/memstore and runtime/redisstore and the load test against
# a redis-server of its own (127.0.0.1, a random port in 20000-32000, no
# persistence; stopped at the end), with the NATS KV watch rows when a JetStream server answers
# at NATS. The rounds alternate the rows; the fan-out and expiry rows run once. PRESENCE=1 adds
# the presence example's runs (loadrun.sh at 200 and 2,000 rooms, and 5,000 viewers of one
# room). On 2 cores, ROUNDS=1 took 67 s with the builds, ROUNDS=3 PRESENCE=1 6 minutes. It
# needs Go and redis-server (and redis-cli) on the PATH.
#
#	examples/loadtest/floors.sh
#	ROUNDS=5 PRESENCE=1 examples/loadtest/floors.sh
#
# Settings (environment): ROUNDS (3), NATS (127.0.0.1:4222; empty: no NATS rows), PRESENCE
# (empty), OUT (a new temporary directory: every command's output, and records.tsv, the figures
# the table is made of). RECORDS=FILE measures nothing and prints the table of the records.tsv
# of an earlier run. The floors are those of the issues; docs/PERFORMANCE.md has what each
# means and the figures of earlier runs.
set -euo pipefail
ROUNDS=${ROUNDS:-3} NATS=${NATS-127.0.0.1:4222} PRESENCE=${PRESENCE:-}

# table ROUNDS PRESENCE RECORDS: prints the table of the figures in RECORDS (records.tsv), with
# ROUNDS rounds, and the presence rows unless PRESENCE is empty.
table() {
	awk -F'\t' -v rounds="$1" -v presence="$2" '
	{ v[$1 SUBSEP $2 SUBSEP $3] = $4 }
	function get(r, n, u) { return ((r, n, u) in v) ? v[r, n, u] : "" }
	# row prints one floor: its name, the figure of each round (computed by f) and how many met it.
	function row(name, f, op, limit, n,    r, x, line, met, got) {
		line = "| " name " |"
		for (r = 1; r <= n; r++) {
			x = fig(f, r)
			if (x == "") { line = line " — |"; continue }
			got++
			if ((op == "<=" && x + 0 <= limit) || (op == ">=" && x + 0 >= limit)) met++
			line = line sprintf(" %.3g |", x)
		}
		for (; r <= rounds; r++) line = line "  |"
		print line " " (got ? (met + 0) " of " got : "—") " |"
	}
	function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "" : a / b }
	function fig(f, r,    a, b, w) {
		if (f == "15.1") return ratio(get(r, "BenchmarkUpsert/c=1/baseline=SET-PX", "ns/op"), get(r, "BenchmarkUpsert/c=1/upsert", "ns/op"))
		if (f == "15.1cpu") return ratio(get(r, "BenchmarkUpsert/c=1/upsert", "client-µs/op"), get(r, "BenchmarkUpsert/c=1/baseline=SET-PX", "client-µs/op"))
		if (f == "15.2") return ratio(get(r, "BenchmarkTouch/c=32/baseline=SET-PX", "ns/op"), get(r, "BenchmarkTouch/c=32/touch", "ns/op"))
		if (f == "15.3") return ratio(get(r, "BenchmarkUpsert/c=1/upsert", "server-µs/op"), get(r, "BenchmarkUpsert/c=1/baseline=SET-PX", "server-µs/op"))
		if (f == "15.3b") return get(r, "BenchmarkUpsert/c=32/upsert", "server-µs/op")
		if (f == "15.4ms") { a = get(r, "BenchmarkTypedSnapshot10k/typed", "ns/op"); return a == "" ? "" : a / 1e6 }
		if (f == "15.4") return ratio(get(r, "BenchmarkTypedSnapshot10k/typed", "ns/op"), get(r, "BenchmarkTypedSnapshot10k/baseline=HGETALL", "ns/op"))
		if (f == "15.4ltms") { a = get(r, "redis:snapshot n=10000, slice reused", "p50Us"); return a == "" ? "" : a / 1000 }
		if (f == "15.4lt") return ratio(get(r, "redis:snapshot n=10000, slice reused", "p50Us"), get(r, "redis:HGETALL n=10000 (baseline)", "p50Us"))
		if (f ~ /^15.5 /) { a = get(r, "BenchmarkSnapshot10k/" substr(f, 6), "ns/op"); return a == "" ? "" : a / 1e6 }
		if (f == "15.6") return ratio(get(r, "BenchmarkUpsert/backend", "ns/op"), get(r, "BenchmarkUpsert/baseline=map+clock", "ns/op"))
		if (f == "15.6a") return get(r, "BenchmarkUpsert/store", "allocs/op")
		if (f == "16rate") return ratio(get(r, "redis:delivery rate=1000/s", "sinceCallP50Us"), get(r, "redis:nats kv watch rate=1000/s", "sinceCallP50Us"))
		if (f == "16flat") return ratio(get(r, "redis:delivery flat out c=1", "sinceCallP50Us"), get(r, "redis:nats kv watch flat out c=1", "sinceCallP50Us"))
		if (f == "16rateapart") return ratio(get(r, "redis:delivery rate=1000/s, reader apart", "sinceCallP50Us"), get(r, "redis:nats kv watch rate=1000/s", "sinceCallP50Us"))
		if (f == "16flatapart") return ratio(get(r, "redis:delivery flat out c=1, reader apart", "sinceCallP50Us"), get(r, "redis:nats kv watch flat out c=1", "sinceCallP50Us"))
		if (f == "16expire") { a = get(r, "redis:expire idle", "p99Us"); return a == "" ? "" : a / 1000 }
		if (f ~ /^16fan/) {
			b = (f ~ /memory/) ? "memory" : "redis"
			a = b ":fanout readers=10000 rate=1000/s"
			if (f ~ /p99/) return get(r, a, "p99Us") == "" ? "" : get(r, a, "p99Us") / 1000
			if (f ~ /cpu/) return get(r, a, "cpuUsPerOp")
			if (get(r, a, "count") == "") return ""
			return get(r, a, "missing") + 0
		}
		# The figures of the tenants scenario are on its row with readers.
		a = "redis:tenants=10000 upsert, 10000 readers open"
		if (f == "16conns") return get(r, a, "blockingConns")
		if (f == "16open") return get(r, a, "readerOpenP99Us") == "" ? "" : get(r, a, "readerOpenP99Us") / 1000
		if (f == "16put") return ratio(get(r, a, "putP99UsReaders"), get(r, a, "putP99UsNoReaders"))
		split(f, w, " ")
		return get(r, w[1], w[2])
	}
	END {
		line = "| floor |"; sep = "|---|"
		for (r = 1; r <= rounds; r++) { line = line " round " r " |"; sep = sep "---|" }
		print line " met |"; print sep "---|"
		row("15.1 upsert at 1 in flight ÷ SET PX, throughput ≥ 0.5", "15.1", ">=", 0.5, rounds)
		row("15.1 client CPU per upsert ÷ SET PX ≤ 1.5", "15.1cpu", "<=", 1.5, rounds)
		row("15.2 touch at 32 in flight ÷ SET PX, throughput ≥ 0.8", "15.2", ">=", 0.8, rounds)
		row("15.3 Redis CPU per upsert ÷ SET PX, 1 in flight ≤ 2", "15.3", "<=", 2, rounds)
		row("15.3 Redis CPU per upsert at 32 in flight, µs ≤ 6", "15.3b", "<=", 6, rounds)
		row("15.4 typed snapshot of 10,000 on Redis, ms ≤ 7", "15.4ms", "<=", 7, rounds)
		row("15.4 typed snapshot ÷ HGETALL ≤ 1.3", "15.4", "<=", 1.3, rounds)
		row("15.4 load test, slice reused, p50 ms ≤ 7", "15.4ltms", "<=", 7, rounds)
		row("15.4 load test, slice reused, p50 ÷ HGETALL ≤ 1.3", "15.4lt", "<=", 1.3, rounds)
		row("15.5 memory snapshot of 10,000, backend, ms ≤ 0.7", "15.5 backend", "<=", 0.7, rounds)
		row("15.5 typed, flat values, slice reused, ms ≤ 0.7", "15.5 store/counter/clone/reused", "<=", 0.7, rounds)
		row("15.5 typed, presence values (cloned), slice reused, ms ≤ 0.7", "15.5 store/presence/clone/reused", "<=", 0.7, rounds)
		row("15.6 memstore upsert ÷ map + clock ≤ 2", "15.6", "<=", 2, rounds)
		row("15.6 Store.Upsert allocations ≤ 1", "15.6a", "<=", 1, rounds)
		row("16 delivery p50 from the call ÷ NATS KV watch, 1,000/s ≤ 1", "16rate", "<=", 1, rounds)
		row("16 delivery p50 from the call ÷ NATS KV watch, flat out ≤ 1", "16flat", "<=", 1, rounds)
		row("16 same, 1,000/s, the reader on a client of its own ≤ 1", "16rateapart", "<=", 1, rounds)
		row("16 same, flat out, the reader on a client of its own ≤ 1", "16flatapart", "<=", 1, rounds)
		row("16 idle expiry p99, ms ≤ 20", "16expire", "<=", 20, 1)
		row("16 fan-out, 10,000 readers, Redis: p99 ms ≤ 250", "16fan p99", "<=", 250, 1)
		row("16 fan-out, Redis: CPU µs per delivery ≤ 0.1", "16fan cpu", "<=", 0.1, 1)
		row("16 fan-out, Redis: events missing = 0", "16fan missing", "<=", 0, 1)
		row("16 fan-out, 10,000 readers, memory: p99 ms ≤ 250", "16fan memory p99", "<=", 250, 1)
		row("16 fan-out, memory: CPU µs per delivery ≤ 0.1", "16fan memory cpu", "<=", 0.1, 1)
		row("16 fan-out, memory: events missing = 0", "16fan memory missing", "<=", 0, 1)
		row("16 tenants: blocking connections ≤ 1", "16conns", "<=", 1, rounds)
		row("16 tenants: reader open p99, ms ≤ 5", "16open", "<=", 5, rounds)
		row("16 tenants: upsert p99 with ÷ without readers ≤ 2", "16put", "<=", 2, rounds)
		if (presence != "") {
			row("16 presence, 200 rooms × 10: join → all p99, ms ≤ 50", "presence-200 joinP99Ms", "<=", 50, 1)
			row("16 presence, 2,000 rooms × 10: join → all p99, ms ≤ 50", "presence-2000 joinP99Ms", "<=", 50, 1)
			row("16 presence, 2,000 rooms: pages without their state = 0", "presence-2000 statesMissing", "<=", 0, 1)
			row("16 presence, 2,000 rooms: members expired while open = 0", "presence-2000 expired", "<=", 0, 1)
			row("16 presence, 5,000 viewers: change → all p99, ms ≤ 250", "viewers changeP99Ms", "<=", 250, 1)
		}
		# The cost of the kernel on the machine, which moves many rows (see the load test doc).
		for (r = 1; r <= rounds; r++) {
			a = get(r, "redis:host", "syscallNs"); b = get(r, "redis:host", "pageFaultNs")
			if (a == "") continue
			host = host (host == "" ? "" : "; ") sprintf("round %d: a system call %d ns", r, a)
			if (b != "") host = host sprintf(", a page fault %d ns", b)
		}
		if (host != "") print "\nThe machine, as the load test measured it in each round: " host "."
		# The time of one CPU-bound loop on each CPU, at the start of each round.
		for (r = 1; r <= rounds; r++) {
			line = ""
			for (c = 0; get(r, "cpu:" c, "ms") != ""; c++) line = line (c ? ", " : "") sprintf("CPU %d %d ms", c, get(r, "cpu:" c, "ms"))
			if (line != "") cpu = cpu (cpu == "" ? "" : "; ") sprintf("round %d: %s", r, line)
		}
		if (cpu != "") print "\nOne CPU-bound loop on each CPU (the CPUs of a virtual machine may differ): " cpu "."
	}' "$3"
}

if [ -n "${RECORDS:-}" ]; then
	rounds=$(cut -f1 "$RECORDS" | sort -n | tail -1)
	presence=$(grep -q '^1	presence-' "$RECORDS" && echo 1 || true)
	table "${rounds:-1}" "$presence" "$RECORDS"
	exit 0
fi

OUT=${OUT:-$(mktemp -d /tmp/floors.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT/failed"
cd "$(dirname "$0")/../.."
command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
	{ echo "floors: redis-server and redis-cli are needed (apt-get install redis-server)" >&2; exit 1; }

redis_pid= redis_port=
stop() {
	if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; fi
	wait 2>/dev/null || true
}
trap stop EXIT

echo "floors: $ROUNDS rounds, output in $OUT; load average $(cut -d' ' -f1-3 /proc/loadavg)"
go test -c -o "$OUT/mem.test" ./runtime/memstore
go test -c -o "$OUT/rs.test" ./runtime/redisstore
go build -o "$OUT/loadtest" ./examples/loadtest

# A free port, and a server that reports OUT as its directory: never another's server, which
# a port taken between the check and the bind would be.
for _ in $(seq 20); do
	port=$(shuf -i 20000-32000 -n 1)
	! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || continue
	timeout 3600 redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$OUT" >"$OUT/redis.log" 2>&1 &
	redis_pid=$!
	for _ in $(seq 100); do
		if [ "$(redis-cli -p "$port" config get dir 2>/dev/null | tail -1)" = "$OUT" ]; then
			redis_port=$port
			break 2
		fi
		kill -0 "$redis_pid" 2>/dev/null || break # it exited: the port was taken
		sleep 0.1
	done
	kill "$redis_pid" 2>/dev/null || true
	redis_pid=
done
[ -n "$redis_port" ] || { echo "floors: redis-server did not start: $OUT/redis.log" >&2; exit 1; }
redis=127.0.0.1:$redis_port
export EPHEMERAL_REDIS_ADDR=$redis
nats=()
if [ -n "$NATS" ] && (exec 3<>"/dev/tcp/${NATS%:*}/${NATS##*:}") 2>/dev/null; then
	nats=(-nats "$NATS")
fi
echo "redis-server $(redis-server --version | grep -o 'v=[0-9.]*') on $redis; NATS: ${nats[1]:-none}"

records=$OUT/records.tsv
: >"$records"
# bench ROUND LOG: records "ROUND name unit value" for each benchmark line of LOG.
bench() {
	awk -v r="$1" '/^Benchmark/ {
		n = $1; sub(/-[0-9]+$/, "", n)
		for (i = 3; i < NF; i += 2) printf "%s\t%s\t%s\t%s\n", r, n, $(i + 1), $i
	}' "$2" >>"$records"
}
# results ROUND PREFIX LOG: records "ROUND PREFIX:scenario field value" for each numeric field
# of the load test's -json output in LOG, and "ROUND PREFIX:host field value" for the cost of a
# system call and of a page fault in its header.
results() {
	awk -v r="$1" -v p="$2" '
		s == "" && /^ *"(syscallNs|pageFaultNs)": [0-9.]+,?$/ {
			k = $1; gsub(/[":]/, "", k); v = $2; sub(/,$/, "", v)
			printf "%s\t%s:host\t%s\t%s\n", r, p, k, v
		}
		/"scenario":/ { s = $0; sub(/^[^:]*: "/, "", s); sub(/",?$/, "", s) }
		s != "" && /^ *"[A-Za-z0-9]+": -?[0-9.]+,?$/ {
			k = $1; gsub(/[":]/, "", k); v = $2; sub(/,$/, "", v)
			printf "%s\t%s:%s\t%s\t%s\n", r, p, s, k, v
		}' "$3" >>"$records"
}
# cpus ROUND: records "ROUND cpu:N ms value", the time CPU N takes for the same CPU-bound loop,
# for each CPU (with taskset; nothing without it). The CPUs of a virtual machine may differ for
# a while: on 2026-12-03 at 19:11-19:14 UTC, CPU 0 took 1.6-1.7 times as long as CPU 1 for
# anything, the write script included, and a minute later as long; a row measured then moves
# with the CPU its processes land on.
cpus() {
	command -v taskset >/dev/null || return 0
	local c t0 t1
	for c in $(seq 0 $(($(nproc) - 1))); do
		t0=$(date +%s%N)
		taskset -c "$c" awk 'BEGIN { for (i = 0; i < 2000000; i++) s += i * i }' || return 0
		t1=$(date +%s%N)
		printf '%s\tcpu:%s\tms\t%s\n' "$1" "$c" $(((t1 - t0) / 1000000)) >>"$records"
	done
}
# run NAME COMMAND...: runs COMMAND with its output in OUT/NAME.log; a failure is reported,
# leaves its figures out and is listed in OUT/failed, which makes the script fail at the end.
run() {
	local name=$1 rc=0
	shift
	echo "  $name"
	"$@" >"$OUT/$name.log" 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		echo "  $name failed (exit $rc): see $OUT/$name.log"
		echo "$name" >>"$OUT/failed"
	fi
}

for round in $(seq "$ROUNDS"); do
	echo "round $round of $ROUNDS, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	cpus "$round"
	(cd runtime/memstore && run "mem-$round" "$OUT/mem.test" -test.run '^$' -test.benchmem -test.benchtime 1s \
		-test.bench 'Upsert/(baseline=map\+clock|backend$|store)|Snapshot10k/backend|Snapshot10k/store/(presence|counter)/clone/reused')
	bench "$round" "$OUT/mem-$round.log"
	(cd runtime/redisstore && run "writes-$round" "$OUT/rs.test" -test.run '^$' -test.benchtime 20000x \
		-test.bench 'Upsert/c=1/(baseline|upsert$)|Touch$/c=32/(baseline|touch$)|Upsert/c=32/(baseline|upsert$)')
	bench "$round" "$OUT/writes-$round.log"
	(cd runtime/redisstore && run "snapshot-$round" "$OUT/rs.test" -test.run '^$' -test.benchtime 100x \
		-test.bench 'TypedSnapshot10k')
	bench "$round" "$OUT/snapshot-$round.log"
	for row in snapshot delivery tenants; do
		args=(-redis "$redis" -json -run "$row")
		case $row in
		snapshot) args+=(-snapshot-sizes 10000) ;;
		delivery) args+=(-events 10000 "${nats[@]}") ;;
		esac
		run "lt-$row-$round" "$OUT/loadtest" "${args[@]}"
		results "$round" redis "$OUT/lt-$row-$round.log"
	done
done
echo "once, load average $(cut -d' ' -f1-3 /proc/loadavg)"
run lt-redis "$OUT/loadtest" -redis "$redis" -json -run 'expire|fanout' -readers 10000
results 1 redis "$OUT/lt-redis.log"
run lt-memory "$OUT/loadtest" -memory -json -run 'fanout' -readers 10000
results 1 memory "$OUT/lt-memory.log"

if [ -n "$PRESENCE" ]; then
	# presence ROUND KIND LOG: records the figures of the presence load test's output.
	presence() {
		awk -v r="$1" -v p="$2" '
			function ms(s) {
				if (sub(/µs$/, "", s)) return s / 1000
				if (sub(/ms$/, "", s)) return s + 0
				if (sub(/s$/, "", s)) return s * 1000
				return s + 0
			}
			function p99(   i) { for (i = 1; i <= NF; i++) if ($i ~ /^p99=/) return ms(substr($i, 5)); return -1 }
			# keep the worst of the drivers
			function put(k, x) { if (!(k in w) || x > w[k]) w[k] = x }
			/join → all members/ { put("joinP99Ms", p99()) }
			/change → all viewers/ { put("changeP99Ms", p99()) }
			/stream open → state/ { for (i = 1; i < NF; i++) if ($(i + 1) == "of") put("statesMissing", $(i + 2) - $i) }
			/expired while the page was open/ && match($0, /open +[0-9]+/) {
				x = substr($0, RSTART, RLENGTH); sub(/open +/, "", x); put("expired", x + 0)
			}
			END { for (k in w) printf "%s\t%s\t%s\t%s\n", r, p, k, w[k] }
		' "$3" >>"$records"
	}
	echo "presence, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	run presence-200 env ROOMS=200 RAMP=5s examples/presence/loadrun.sh
	presence 1 presence-200 "$OUT/presence-200.log"
	run presence-2000 examples/presence/loadrun.sh
	presence 1 presence-2000 "$OUT/presence-2000.log"
	go test -c -o "$OUT/presence.test" ./examples/presence
	(cd examples/presence && run presence-viewers "$OUT/presence.test" -test.run 'TestLoad$/viewers' -test.v \
		-load.viewers 5000 -load.changes 20 -load.every 100ms -load.ttl 10s -load.timeout 60s -load.redis "$redis")
	presence 1 viewers "$OUT/presence-viewers.log"
fi

echo
table "$ROUNDS" "$PRESENCE" "$records" | tee "$OUT/floors.md"
if [ -s "$OUT/failed" ]; then
	echo
	echo "failed: $(tr '\n' ' ' <"$OUT/failed")(their rows are empty or short; see their logs in $OUT)"
	exit 1
fi
