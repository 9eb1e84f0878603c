package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// toy is a run of every scenario at a size that takes a fraction of a second.
var toy = []string{
	"-json", "-c", "4", "-n", "30", "-snapshot-sizes", "5,40", "-rate", "2000", "-events", "20",
	"-expire-keys", "3", "-expire-ttl", "20ms", "-readers", "1,7", "-fanout-events", "15",
	"-tenants", "9", "-max-events", "50", "-max-time", "20s",
}

// runToy runs the toy scenarios with extra flags and returns the decoded report and stderr.
func runToy(t *testing.T, extra ...string) (report, string) {
	t.Helper()
	cfg, err := parseFlags(append(extra, toy...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, cfg, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not a JSON report: %v\n%s", err, stdout.Bytes())
	}
	return rep, stderr.String()
}

// checkRows checks that the report has exactly the rows want, with their counts, nothing
// missing and sane percentiles.
func checkRows(t *testing.T, rep report, want map[string]int) {
	t.Helper()
	got := make(map[string]result)
	for _, r := range rep.Results {
		got[r.Scenario] = r
	}
	for name, count := range want {
		r, ok := got[name]
		if !ok {
			t.Errorf("no row %q", name)
			continue
		}
		if r.Count != count || r.Missing != 0 || r.Note != "" {
			t.Errorf("%s: count %d, missing %d, note %q; want count %d, none missing, no note",
				name, r.Count, r.Missing, r.Note, count)
		}
		if !(0 <= r.P50 && r.P50 <= r.P99 && r.P99 <= r.Max) {
			t.Errorf("%s: p50 %v, p99 %v, max %v out of order", name, r.P50, r.P99, r.Max)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d rows, want %d: %+v", len(got), len(want), rep.Results)
	}
}

// checkSinceCall checks that the delivery rows, and only they, have the delays since the
// write call, each at least the delay since its return.
func checkSinceCall(t *testing.T, rep report) {
	t.Helper()
	for _, r := range rep.Results {
		want := strings.HasPrefix(r.Scenario, "delivery") || strings.HasPrefix(r.Scenario, "nats kv watch ")
		if got := r.SinceCallP50 > 0; got != want || want && (r.SinceCallP50 < r.P50 || r.SinceCallP99 < r.P99) {
			t.Errorf("%s: p50 %v, p99 %v, since the call p50 %v, p99 %v", r.Scenario, r.P50, r.P99, r.SinceCallP50, r.SinceCallP99)
		}
	}
}

// rows are the rows of the toy run on every backend.
var rows = map[string]int{
	"upsert c=1":                       30,
	"touch c=1":                        30,
	"upsert c=4":                       30,
	"touch c=4":                        30,
	"snapshot n=5":                     20,
	"snapshot n=5, slice reused":       20,
	"snapshot n=40":                    20,
	"snapshot n=40, slice reused":      20,
	"delivery rate=2000/s":             20,
	"delivery flat out c=1":            20,
	"delivery flat out c=4":            20,
	"expire idle":                      3,
	"fanout readers=1 rate=2000/s":     15,
	"fanout readers=7 rate=2000/s":     7 * 15,
	"tenants=9 upsert, no readers":     20,
	"tenants=9 open readers":           9,
	"tenants=9 upsert, 9 readers open": 20,
	"tenants=9 events":                 10, // the upserts to the watched tenants, half of them
}

// checkTenants checks the summary of the tenants scenario: every figure set, and the
// blocking connections counted exactly when the target has CLIENT LIST.
func checkTenants(t *testing.T, rep report, wantBlocking bool) {
	t.Helper()
	for _, r := range rep.Results {
		if r.Scenario == "tenants=9 open readers" && (r.GCCycles < 0 || r.GCCycles > 0 && r.GCCPUUsPerOp <= 0) {
			t.Errorf("tenants opens: %d collections taking %v µs of CPU an open", r.GCCycles, r.GCCPUUsPerOp)
		}
		if r.Scenario != "tenants=9 upsert, 9 readers open" {
			continue
		}
		if r.PutP99NoReaders <= 0 || r.PutP99Readers != r.P99 || r.ReaderOpenP99 <= 0 || r.ReaderOpenP50 > r.ReaderOpenP99 {
			t.Errorf("tenants summary: %+v", r)
		}
		if (r.BlockingConns != nil) != wantBlocking {
			t.Errorf("tenants: blockingConns %v, want it set: %v", r.BlockingConns, wantBlocking)
		}
		return
	}
	t.Error("no tenants summary row")
}

func TestMemory(t *testing.T) {
	rep, stderr := runToy(t, "-memory")
	if rep.Target != "memory" {
		t.Errorf("target %q, want memory", rep.Target)
	}
	// Measured where the CPU time is read (Unix), and nowhere else.
	if measured := cpuTime() > 0; (rep.SyscallNs > 0) != measured {
		t.Errorf("syscallNs %v, want it set: %v", rep.SyscallNs, measured)
	}
	if measured := runtime.GOOS == "linux"; (rep.PageFaultNs > 0) != measured {
		t.Errorf("pageFaultNs %v, want it set: %v", rep.PageFaultNs, measured)
	}
	checkRows(t, rep, rows)
	checkTenants(t, rep, false)
	checkSinceCall(t, rep)
	if !strings.Contains(stderr, "loadtest: fanout readers=7") {
		t.Errorf("no progress line of the fan-out row in stderr %q", stderr)
	}
	if strings.ContainsAny(stderr, "\r\033") {
		t.Errorf("control characters in the progress written to a non-terminal: %q", stderr)
	}
}

func TestMiniredis(t *testing.T) {
	m := miniredis.RunT(t)
	rep, _ := runToy(t, "-redis", m.Addr())
	want := map[string]int{
		"SET PX (baseline) c=1":   30,
		"SET PX (baseline) c=4":   30,
		"HGETALL n=5 (baseline)":  20,
		"HGETALL n=40 (baseline)": 20,
		// Redis only: the readers on a backend of their own.
		"delivery rate=2000/s, reader apart":  20,
		"delivery flat out c=1, reader apart": 20,
	}
	for k, v := range rows {
		want[k] = v
	}
	checkRows(t, rep, want)
	checkTenants(t, rep, false) // miniredis has no CLIENT LIST
	checkSinceCall(t, rep)
	if keys := m.Keys(); len(keys) > 0 {
		t.Errorf("the run left keys behind: %q", keys)
	}
}

func TestTable(t *testing.T) {
	cfg, err := parseFlags([]string{"-memory", "-run", "^expire$", "-expire-keys", "1", "-expire-ttl", "1ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), cfg, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "target memory,") ||
		!strings.HasPrefix(lines[2], "scenario") || !strings.HasPrefix(lines[3], "expire idle ") {
		t.Errorf("table:\n%s", stdout.String())
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-scale", "0.01", "-snapshot-sizes", "100,1000", "-readers", "10000", "-tenants", "1000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ops != 200 || cfg.events != 20 || cfg.expireKeys != 1 || cfg.fanoutEvents != 20 ||
		cfg.snapshotSizes[0] != 1 || cfg.snapshotSizes[1] != 10 || cfg.readers[0] != 100 || cfg.tenants != 10 {
		t.Errorf("-scale 0.01 gave %+v", cfg)
	}
	for _, args := range [][]string{
		{"-memory", "-redis", "localhost:6379"},
		{"-snapshot-sizes", "10,x"},
		{"-readers", "0"},
		{"-scale", "0"},
		{"-c", "0"},
		{"-tenants", "0"},
		{"-run", "("},
		{"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", args)
		}
	}
	if _, err := parseFlags([]string{"-h"}, io.Discard); err != flag.ErrHelp {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

func TestHist(t *testing.T) {
	var h hist
	for i := 10_000; i >= 1; i-- { // 1µs to 10ms, in reverse so that max is not the last
		h.record(time.Duration(i) * time.Microsecond)
	}
	h.record(-time.Second) // counts as 0
	if h.count() != 10_001 {
		t.Errorf("count %d, want 10001", h.count())
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := h.quantile(c.q)
		if got < c.want || float64(got) > 1.035*float64(c.want) {
			t.Errorf("quantile(%v) = %v, want %v to 3.5%% above", c.q, got, c.want)
		}
	}
	if h.maxDuration() != 10*time.Millisecond {
		t.Errorf("max %v, want 10ms", h.maxDuration())
	}
	var empty hist
	if empty.quantile(0.5) != 0 {
		t.Errorf("quantile of an empty histogram = %v, want 0", empty.quantile(0.5))
	}
}

func TestCPUProfile(t *testing.T) {
	path := t.TempDir() + "/cpu.pprof"
	cfg, err := parseFlags([]string{"-memory", "-run", "^throughput$", "-n", "10", "-cpuprofile", path}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), cfg, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Errorf("no profile written: %v", err)
	}
	cfg.cpuProfile = t.TempDir() + "/missing/cpu.pprof"
	if err := run(context.Background(), cfg, io.Discard, io.Discard); err == nil {
		t.Error("run with an unwritable profile path succeeded")
	}
}

func TestCountConns(t *testing.T) {
	const list = `id=3 addr=127.0.0.1:1 name=run cmd=xread flags=b
id=4 addr=127.0.0.1:2 name=run cmd=evalsha flags=N
id=5 addr=127.0.0.1:3 name=run cmd=ssubscribe flags=P
id=6 addr=127.0.0.1:4 name=run cmd=ping flags=P
id=7 addr=127.0.0.1:5 name=other cmd=xread flags=b
id=8 addr=127.0.0.1:6 name=run cmd=xread flags=N
`
	got := countConns(list, "run")
	want := connStats{total: 5, xread: 2, blocked: 1, blocking: 4}
	if got != want {
		t.Errorf("countConns = %+v, want %+v", got, want)
	}
}

// TestNATSUnreachable checks that without a NATS server the KV watch row says it was skipped.
func TestNATSUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a port where nobody listens
	rep, _ := runToy(t, "-memory", "-run", "^delivery$", "-nats", addr)
	var found bool
	for _, r := range rep.Results {
		if strings.HasPrefix(r.Scenario, "nats") {
			found = true
			if r.Scenario != "nats kv watch" || r.Count != 0 || !strings.HasPrefix(r.Note, "skipped: no JetStream server at "+addr) {
				t.Errorf("row %+v, want a skipped nats kv watch", r)
			}
		}
	}
	if !found || len(rep.Results) != 4 {
		t.Errorf("rows %+v, want the delivery rows and the skipped nats row", rep.Results)
	}
}

// envNATS names a NATS server with JetStream (host:port) to run the KV watch rows on.
const envNATS = "EPHEMERAL_NATS_ADDR"

func TestNATS(t *testing.T) {
	addr := os.Getenv(envNATS)
	if addr == "" {
		t.Skipf("set %s to run the NATS KV watch rows", envNATS)
	}
	rep, _ := runToy(t, "-memory", "-run", "^delivery$", "-nats", addr)
	want := map[string]int{
		"nats kv watch rate=2000/s":  20,
		"nats kv watch flat out c=1": 20,
	}
	for k, v := range rows {
		if strings.HasPrefix(k, "delivery") {
			want[k] = v
		}
	}
	checkRows(t, rep, want)
	checkSinceCall(t, rep)
}
