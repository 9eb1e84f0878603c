package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// report is the output of a run.
type report struct {
	Target      string    `json:"target"`
	Started     time.Time `json:"started"`
	GoVersion   string    `json:"goVersion"`
	NumCPU      int       `json:"numCPU"`
	GOMAXPROCS  int       `json:"gomaxprocs"`
	LoadAverage string    `json:"loadAverage,omitempty"` // from /proc/loadavg at the start
	// SyscallNs is how long one system call took at the start (see syscallTime; 0 where it is
	// not measured): every row that waits on a socket pays it many times, on both sides of the
	// socket. It can change with the machine far more than the speed of its CPUs does (1,100
	// ns on this project's 2-core test machine on 2026-12-02 after a reboot, when its Redis and
	// HTTP figures were 1.4 to 3 times those of the morning), so compare runs on different
	// machines by their ratios to the baselines of the same run.
	SyscallNs float64 `json:"syscallNs,omitempty"`
	// PageFaultNs is how long the first touch of a page of fresh memory took at the start (see
	// pageFaultTime; 0 where it is not measured): a process pays it for every page its heap or
	// its goroutine stacks grow by, and so does the Redis server as its data grows. Like
	// SyscallNs it changes with the machine: 8,200 to 9,100 ns on this project's test machine
	// on 2026-12-03 after a reboot, when its reader opens' p99 was 4 to 10 times that
	// morning's; there, a run with the collector off (GOGC=off), all of whose memory is fresh,
	// was slower than one with it on.
	PageFaultNs float64  `json:"pageFaultNs,omitempty"`
	Concurrency int      `json:"concurrency"`
	Results     []result `json:"results"`
}

// result is one row of the report. Latencies are in microseconds.
type result struct {
	Scenario  string  `json:"scenario"`
	Count     int     `json:"count"` // calls, snapshots, or events received
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"perSecond,omitempty"`
	P50       float64 `json:"p50Us"`
	P99       float64 `json:"p99Us"`
	Max       float64 `json:"maxUs"`
	// From INFO commandstats on Redis: the server's microseconds per call of the command
	// behind the row, and its calls per operation (below 1 when upserts are batched).
	ServerUsPerCall float64 `json:"serverUsPerCall,omitempty"`
	// CPUUsPerOp is this process's CPU time (user and system) during the row per count: the
	// cost of an operation or of one event's delivery to one reader, whatever else loads the
	// machine. 0 where it cannot be read.
	CPUUsPerOp float64 `json:"cpuUsPerOp,omitempty"`
	// ServerCPUUsPerOp is the Redis server's CPU time (INFO cpu) during the row per count: all
	// of the server's work, whoever asked for it, so best measured on a server of one's own.
	ServerCPUUsPerOp float64 `json:"serverCpuUsPerOp,omitempty"`
	CallsPerOp       float64 `json:"callsPerOp,omitempty"`
	// Fan-out, from CLIENT LIST: the run's Redis connections, those whose last command was
	// XREAD (the readers' blocking reads) and those blocked at the moment of the sample; and
	// the Go heap in use and the memory the Go runtime holds from the system (the process's
	// memory but for what C code or the OS adds). Each is the largest sampled during the row.
	Conns   int     `json:"conns,omitempty"`
	XRead   int     `json:"xreadConns,omitempty"`
	Blocked int     `json:"blocked,omitempty"`
	HeapMiB float64 `json:"heapMiB,omitempty"`
	SysMiB  float64 `json:"sysMiB,omitempty"`
	// IdleKiB is the heap per reader with the readers open and nothing written yet.
	IdleKiB float64 `json:"idleKiBPerReader,omitempty"`
	// The tenants scenario's summary, on its row of upserts with the readers open: the p99
	// of an upsert without readers (the baseline of the same run) and with them, the time to
	// open a reader, and, on Redis, the most connections of the scenario's client seen at
	// once whose last command was a blocking read or a subscription (CLIENT LIST).
	PutP99NoReaders float64 `json:"putP99UsNoReaders,omitempty"`
	PutP99Readers   float64 `json:"putP99UsReaders,omitempty"`
	ReaderOpenP50   float64 `json:"readerOpenP50Us,omitempty"`
	ReaderOpenP99   float64 `json:"readerOpenP99Us,omitempty"`
	BlockingConns   *int    `json:"blockingConns,omitempty"`
	// GCCycles and GCCPUUsPerOp are, on the tenants scenario's row of opens, the garbage
	// collections that ran during the row and their CPU time per count (runtime/metrics): the
	// collector scans the stack of every goroutine waiting in Recv, and the opens that meet a
	// collection make the tail of the row (docs/PERFORMANCE.md).
	GCCycles     int     `json:"gcCycles,omitempty"`
	GCCPUUsPerOp float64 `json:"gcCpuUsPerOp,omitempty"`
	// SinceCallP50 and SinceCallP99 are, on the delivery rows (one reader) and the NATS rows,
	// the percentiles of the delay from the start of the write call, rather than its return,
	// to the receipt: the write's round trip and the delivery together, which no event beats.
	SinceCallP50 float64 `json:"sinceCallP50Us,omitempty"`
	SinceCallP99 float64 `json:"sinceCallP99Us,omitempty"`
	// Early counts the durations recorded as 0: events that arrived before the call they are
	// timed from returned (or, in the expire row, before the expiry as this machine reckons it).
	Early int `json:"early,omitempty"`
	// Missing counts events that did not arrive before the row's time limit.
	Missing int    `json:"missing,omitempty"`
	Note    string `json:"note,omitempty"`
}

func newReport(target string, cfg config) *report {
	load, _ := os.ReadFile("/proc/loadavg")
	fields := strings.Fields(string(load))
	return &report{
		Target:      target,
		Started:     time.Now().UTC().Truncate(time.Second),
		GoVersion:   runtime.Version(),
		NumCPU:      runtime.NumCPU(),
		GOMAXPROCS:  runtime.GOMAXPROCS(0),
		LoadAverage: strings.Join(fields[:min(3, len(fields))], " "),
		SyscallNs:   float64(syscallTime().Nanoseconds()),
		PageFaultNs: float64(pageFaultTime().Nanoseconds()),
		Concurrency: cfg.conc,
	}
}

// setSinceCall sets the percentiles of the delays since the write calls from h, if not nil.
func (x *result) setSinceCall(h *hist) {
	if h != nil && h.count() > 0 {
		x.SinceCallP50, x.SinceCallP99 = micros(h.quantile(0.50)), micros(h.quantile(0.99))
	}
}

// fromHist returns a result with the count and percentiles of h over elapsed, during which
// the process used cpu.
func fromHist(name string, h *hist, elapsed, cpu time.Duration) result {
	return fromHistCount(name, h, h.count(), elapsed, cpu)
}

// fromHistCount is fromHist for a row of n operations, of which h timed some.
func fromHistCount(name string, h *hist, n int, elapsed, cpu time.Duration) result {
	r := result{
		Scenario: name,
		Count:    n,
		Seconds:  round(elapsed.Seconds(), 3),
		P50:      micros(h.quantile(0.50)),
		P99:      micros(h.quantile(0.99)),
		Max:      micros(h.maxDuration()),
		Early:    int(h.counts[0].Load()),
	}
	if elapsed > 0 {
		r.PerSecond = round(float64(n)/elapsed.Seconds(), 0)
	}
	if n > 0 {
		r.CPUUsPerOp = round(float64(cpu)/1e3/float64(n), 2)
	}
	return r
}

func micros(d time.Duration) float64 { return round(float64(d)/1e3, 1) }

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *report) writeTable(w io.Writer) error {
	sys := ""
	if r.SyscallNs > 0 {
		sys = fmt.Sprintf(", a system call %.0f ns", r.SyscallNs)
	}
	if r.PageFaultNs > 0 {
		sys += fmt.Sprintf(", a page fault %.0f ns", r.PageFaultNs)
	}
	fmt.Fprintf(w, "target %s, %s, %d CPUs (GOMAXPROCS %d), load average %s%s, started %s\n\n",
		r.Target, r.GoVersion, r.NumCPU, r.GOMAXPROCS, r.LoadAverage, sys, r.Started.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tcount\tper s\tp50\tp99\tmax\tcpu µs/op\tsrv cpu µs/op\tsrv µs/call\tcalls/op\tnotes")
	for _, x := range r.Results {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Scenario, x.Count,
			num(x.PerSecond, 0), dur(x.P50), dur(x.P99), dur(x.Max), num(x.CPUUsPerOp, 2),
			num(x.ServerCPUUsPerOp, 2), num(x.ServerUsPerCall, 1), num(x.CallsPerOp, 3), x.notes())
	}
	return tw.Flush()
}

// notes joins the fields of a row that only some scenarios have.
func (x *result) notes() string {
	var s []string
	if x.BlockingConns != nil {
		s = append(s, fmt.Sprintf("blockingConns=%d", *x.BlockingConns))
	}
	if x.Conns > 0 {
		s = append(s, fmt.Sprintf("conns=%d xread=%d blocked=%d", x.Conns, x.XRead, x.Blocked))
	}
	if x.HeapMiB > 0 {
		s = append(s, fmt.Sprintf("heap=%.0fMiB sys=%.0fMiB", x.HeapMiB, x.SysMiB))
	}
	if x.IdleKiB > 0 {
		s = append(s, fmt.Sprintf("idle=%.1fKiB/reader", x.IdleKiB))
	}
	if x.GCCycles > 0 {
		s = append(s, fmt.Sprintf("gc=%d cycles, %.2f µs/op", x.GCCycles, x.GCCPUUsPerOp))
	}
	if x.SinceCallP50 > 0 {
		s = append(s, fmt.Sprintf("from call p50=%s p99=%s", dur(x.SinceCallP50), dur(x.SinceCallP99)))
	}
	if x.Early > 0 {
		s = append(s, fmt.Sprintf("early=%d", x.Early))
	}
	if x.Missing > 0 {
		s = append(s, fmt.Sprintf("missing=%d", x.Missing))
	}
	if x.Note != "" {
		s = append(s, x.Note)
	}
	return strings.Join(s, " ")
}

// num formats v with digits decimals, or "-" for 0.
func num(v float64, digits int) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.*f", digits, v)
}

// dur formats a latency in microseconds with three significant digits.
func dur(us float64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%.3gµs", us)
	case us < 1e6:
		return fmt.Sprintf("%.3gms", us/1e3)
	default:
		return fmt.Sprintf("%.3gs", us/1e6)
	}
}
