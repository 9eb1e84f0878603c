#!/usr/bin/env bash
# loadrun.sh runs TestLoad's members run across processes, as a deployment on Redis would
# serve it: a redis-server of its own, SERVERS presence servers on it that share a secret,
# and DRIVERS driver processes (the test binary with -load.servers and -load.part), each
# simulating the pages of its share of the rooms, spread over all the servers. It waits for
# the drivers, prints their figures, the most file descriptors and the CPU time each process
# used, Redis's time a call of the store's scripts, and stops everything it started.
# Everything listens on 127.0.0.1, on random ports in 20000-32000; every process is bounded by
# LIMIT.
#
#	examples/presence/loadrun.sh                        # 2,000 rooms x 10, ttl 10 s
#	ROOMS=200 TTL=10s examples/presence/loadrun.sh
#
# Settings (environment): ROOMS (2000), MEMBERS (10), TTL (10s), HOLD (30s), RAMP (20s: the
# streams open over it, then the joins and the leaves are spread over it), TIMEOUT (60s: each
# wait of a driver), REDIS_POOL (0: each server's -redis-pool), SERVERS (2), DRIVERS (2), LIMIT (600s), OUT (a new temporary directory:
# the logs), PROFILE (empty; when set, each driver writes a CPU profile, OUT/driver-i.cpu, and
# each server k serves its metrics listener (-metrics-addr) and saves a CPU profile of the
# PROFILE_SECONDS (60) after the drivers start, OUT/server-k.cpu, from /debug/pprof/profile).
set -euo pipefail

ROOMS=${ROOMS:-2000} MEMBERS=${MEMBERS:-10} TTL=${TTL:-10s} HOLD=${HOLD:-30s} RAMP=${RAMP:-20s}
TIMEOUT=${TIMEOUT:-60s} SERVERS=${SERVERS:-2} DRIVERS=${DRIVERS:-2} LIMIT=${LIMIT:-600s}
PROFILE=${PROFILE:-} PROFILE_SECONDS=${PROFILE_SECONDS:-60} REDIS_POOL=${REDIS_POOL:-0}
OUT=${OUT:-$(mktemp -d /tmp/presence-load.XXXXXX)}
mkdir -p "$OUT"
cd "$(dirname "$0")/../.."

pids=() redis_port=
stop() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	if [ -n "$redis_port" ]; then redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true; fi
	wait 2>/dev/null || true
}
trap stop EXIT

go build -o "$OUT/presence" ./examples/presence
go test -c -o "$OUT/presence.test" ./examples/presence

# The ports: Redis's, then each server's, then each server's metrics listener's.
read -r -a ports <<<"$(shuf -i 20000-32000 -n $((2 * SERVERS + 1)) | tr '\n' ' ')"
redis_port=${ports[0]}
timeout "$LIMIT" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
	>"$OUT/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

secret=$(head -c 24 /dev/urandom | base64)
urls=() server_pids=() metrics=()
for k in $(seq "$SERVERS"); do
	port=${ports[$k]}
	metrics_flag=()
	if [ -n "$PROFILE" ]; then
		metrics+=("127.0.0.1:${ports[$((SERVERS + k))]}")
		metrics_flag=(-metrics-addr "${metrics[$((k - 1))]}")
	fi
	PRESENCE_SECRET=$secret timeout "$LIMIT" "$OUT/presence" -addr "127.0.0.1:$port" -redis "127.0.0.1:$redis_port" \
		-ttl "$TTL" -redis-pool "$REDIS_POOL" -max-conns 1000000 -max-streams 1000000 -stream-rate 1e9 -stream-burst 1000000 \
		-join-rate 1e9 -join-burst 1000000 -write-rate 1e9 -write-burst 1000000 "${metrics_flag[@]}" \
		>"$OUT/server-$k.log" 2>&1 &
	server_pids+=($!)
	pids+=($!)
	urls+=("http://127.0.0.1:$port")
	for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/static/style.css" && break; sleep 0.1; done
done

echo "presence load: $ROOMS rooms x $MEMBERS, ttl $TTL, hold $HOLD, ramp $RAMP; $SERVERS servers (-redis-pool $REDIS_POOL), $DRIVERS drivers, redis-server on $redis_port; logs in $OUT"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
driver_pids=()
for i in $(seq 0 $((DRIVERS - 1))); do
	timeout "$LIMIT" "$OUT/presence.test" -test.run 'TestLoad$/members' -test.v -test.timeout "$LIMIT" \
		-load.servers "$(
			IFS=,
			echo "${urls[*]}"
		)" -load.part "$i/$DRIVERS" \
		-load.rooms "$ROOMS" -load.members "$MEMBERS" -load.hold "$HOLD" -load.ramp "$RAMP" \
		-load.timeout "$TIMEOUT" ${PROFILE:+-test.cpuprofile "$OUT/driver-$i.cpu"} >"$OUT/driver-$i.log" 2>&1 &
	driver_pids+=($!)
	pids+=($!)
done
profile_pids=()
if [ -n "$PROFILE" ]; then
	for k in $(seq "$SERVERS"); do
		curl -sf -o "$OUT/server-$k.cpu" --max-time $((PROFILE_SECONDS + 30)) \
			"http://${metrics[$((k - 1))]}/debug/pprof/profile?seconds=$PROFILE_SECONDS" &
		profile_pids+=($!)
		pids+=($!)
	done
fi

# Sample every process's descriptors, CPU time (utime + stime) and time spent runnable but
# waiting for a CPU (the run_delay of its threads' schedstat) until the drivers are done.
names=(redis) all=("$redis_pid")
for k in $(seq "$SERVERS"); do names+=("server-$k"); all+=("${server_pids[$((k - 1))]}"); done
for i in $(seq 0 $((DRIVERS - 1))); do names+=("driver-$i"); all+=("${driver_pids[$i]}"); done
declare -A maxfd cpu waited
loads=()
running() { for pid in "${driver_pids[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }
tick=0
while running; do
	for n in "${!all[@]}"; do
		# The process of a name is the child of timeout.
		child=$(pgrep -P "${all[$n]}" | head -1) || true
		[ -n "$child" ] || continue
		fds=$(ls "/proc/$child/fd" 2>/dev/null | wc -l) || continue
		[ "$fds" -gt "${maxfd[$n]:-0}" ] && maxfd[$n]=$fds
		stat=$(cat "/proc/$child/stat" 2>/dev/null) || continue
		read -r -a f <<<"${stat##*) }"
		cpu[$n]=$((f[11] + f[12]))
		w=$(cat /proc/"$child"/task/*/schedstat 2>/dev/null | awk '{s += $2} END {printf "%d", s / 1e6}') || continue
		[ "$w" -gt "${waited[$n]:-0}" ] && waited[$n]=$w
	done
	if [ $((tick % 10)) -eq 0 ]; then loads+=("$(cut -d' ' -f1 /proc/loadavg)"); fi
	tick=$((tick + 1))
	sleep 1
done
status=0
for pid in "${driver_pids[@]}"; do wait "$pid" || status=1; done
# The servers' profiles end PROFILE_SECONDS after the drivers started, even if they are done.
for pid in "${profile_pids[@]}"; do wait "$pid" || echo "a server's CPU profile failed (curl: $?)"; done
redis-cli -p "$redis_port" info commandstats >"$OUT/redis-commandstats.txt" 2>&1 || true

hz=$(getconf CLK_TCK)
echo "load average every 10 s: ${loads[*]}; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
for n in "${!all[@]}"; do
	printf '%-9s most descriptors %6s  CPU %6.1f s  waited for a CPU %6.1f s\n' "${names[$n]}" "${maxfd[$n]:-?}" \
		"$(echo "${cpu[$n]:-0} / $hz" | bc -l)" "$(echo "${waited[$n]:-0} / 1000" | bc -l)"
done
# Redis's time in the store's scripts (functions: FCALL, FCALL_RO; scripts: EVALSHA).
awk -F'[:,=]' '/^cmdstat_(fcall|fcall_ro|evalsha)[:]/ {
	sub("cmdstat_", "", $1); printf "redis     %s: %d calls, %.1f µs a call\n", $1, $3, $7 }' \
	"$OUT/redis-commandstats.txt" || true
for i in $(seq 0 $((DRIVERS - 1))); do
	echo "--- driver $i ($ROOMS rooms, part $i/$DRIVERS)"
	grep -E 'load_test.go|^(---|ok|FAIL|PASS)' "$OUT/driver-$i.log" || tail -20 "$OUT/driver-$i.log"
done
for k in $(seq "$SERVERS"); do
	if [ -s "$OUT/server-$k.log" ] && grep -qEv 'presence: (open|metrics at)' "$OUT/server-$k.log"; then
		echo "--- server $k log (first lines)"
		grep -Ev 'presence: (open|metrics at)' "$OUT/server-$k.log" | head -5
	fi
done
exit $status
