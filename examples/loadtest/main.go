package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/ephemeral-go/ephemeral"
)

// config is what the flags set.
type config struct {
	redisAddr     string         // -redis; "" means memory
	natsAddr      string         // -nats: NATS server of the KV watch rows; "" means none
	memory        bool           // -memory
	json          bool           // -json
	conc          int            // -c: goroutines of the concurrent rows
	ops           int            // -n: calls per throughput row
	snapshotSizes []int          // -snapshot-sizes
	rate          int            // -rate: upserts per second of the paced writers
	events        int            // -events: upserts per delivery row
	expireKeys    int            // -expire-keys
	expireTTL     time.Duration  // -expire-ttl: TTL of the first key of the expire scenario
	readers       []int          // -readers: readers of each fan-out row
	fanoutEvents  int            // -fanout-events: upserts of the fan-out scenario
	tenants       int            // -tenants: tenants with a reader each in the tenants scenario
	maxEvents     int            // -max-events: the stores' MaxEvents
	maxTime       time.Duration  // -max-time: bound of each row
	run           *regexp.Regexp // -run: scenarios to run
	cpuProfile    string         // -cpuprofile
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// parseFlags parses the command line into a config; usage and flag errors go to w.
func parseFlags(args []string, w io.Writer) (config, error) {
	var (
		cfg     config
		sizes   string
		readers string
		run     string
		scale   float64
	)
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintln(w, "usage: loadtest [-redis host:port | -memory] [flags]")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.redisAddr, "redis", "", "`address` of the Redis server to test (keys get a prefix of their own and are deleted at the end)")
	fs.StringVar(&cfg.natsAddr, "nats", "", "`address` of a NATS JetStream server: adds KV watch rows beside the delivery rows (a bucket of its own, deleted at the end)")
	fs.BoolVar(&cfg.memory, "memory", false, "test the in-memory backend (the default without -redis)")
	fs.BoolVar(&cfg.json, "json", false, "print the results as JSON instead of a table")
	fs.IntVar(&cfg.conc, "c", 32, "goroutines of the concurrent throughput and delivery rows")
	fs.IntVar(&cfg.ops, "n", 20000, "calls per throughput row")
	fs.StringVar(&sizes, "snapshot-sizes", "1000,10000,100000", "comma-separated entry counts of the snapshot rows")
	fs.IntVar(&cfg.rate, "rate", 1000, "upserts per second of the paced writers (delivery and fan-out)")
	fs.IntVar(&cfg.events, "events", 2000, "upserts per delivery row")
	fs.IntVar(&cfg.expireKeys, "expire-keys", 40, "keys of the expire row")
	fs.DurationVar(&cfg.expireTTL, "expire-ttl", 300*time.Millisecond, "TTL of the first key of the expire row; each further key lives 37ms longer")
	fs.StringVar(&readers, "readers", "1000,10000", "comma-separated reader counts of the fan-out rows")
	fs.IntVar(&cfg.fanoutEvents, "fanout-events", 2000, "upserts per fan-out row")
	fs.IntVar(&cfg.tenants, "tenants", 10000, "tenants of the tenants scenario, each with one reader")
	fs.IntVar(&cfg.maxEvents, "max-events", ephemeral.Limits{}.WithDefaults().MaxEvents, "events each tenant keeps (Limits.MaxEvents); the throughput rows' tenant writes more before they start, so that their writes trim the stream as a long-lived tenant's do")
	fs.DurationVar(&cfg.maxTime, "max-time", 30*time.Second, "time limit of each row")
	fs.StringVar(&run, "run", "", "run only the scenarios matching this `regexp` (throughput, snapshot, delivery, expire, fanout, tenants)")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to `file`")
	fs.Float64Var(&scale, "scale", 1, "multiply -n, -snapshot-sizes, -events, -expire-keys, -readers, -fanout-events and -tenants by this `factor`")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.memory && cfg.redisAddr != "" {
		return cfg, errors.New("-memory and -redis exclude each other")
	}
	var err error
	if cfg.run, err = regexp.Compile(run); err != nil {
		return cfg, fmt.Errorf("-run: %w", err)
	}
	if cfg.snapshotSizes, err = parseSizes(sizes); err != nil {
		return cfg, fmt.Errorf("-snapshot-sizes: %w", err)
	}
	if scale <= 0 {
		return cfg, fmt.Errorf("-scale %v: want > 0", scale)
	}
	if cfg.readers, err = parseSizes(readers); err != nil {
		return cfg, fmt.Errorf("-readers: %w", err)
	}
	if cfg.tenants < 1 {
		return cfg, fmt.Errorf("-tenants %d: want > 0", cfg.tenants)
	}
	for _, n := range []*int{&cfg.ops, &cfg.events, &cfg.expireKeys, &cfg.fanoutEvents, &cfg.tenants} {
		*n = scaled(*n, scale)
	}
	for _, list := range [][]int{cfg.snapshotSizes, cfg.readers} {
		for i := range list {
			list[i] = scaled(list[i], scale)
		}
	}
	if cfg.conc < 1 || cfg.rate < 1 || cfg.expireTTL <= 0 || cfg.maxTime <= 0 || cfg.maxEvents < 1 {
		return cfg, errors.New("-c, -rate, -expire-ttl, -max-time and -max-events must be positive")
	}
	return cfg, nil
}

// parseSizes parses a comma-separated list of positive integers.
func parseSizes(s string) ([]int, error) {
	var sizes []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// scaled returns n times f, at least 1.
func scaled(n int, f float64) int { return max(1, int(float64(n)*f+0.5)) }

// run opens the target, runs the selected scenarios, prints the report to stdout and the
// progress to stderr, and deletes the run's keys.
func run(ctx context.Context, cfg config, stdout, stderr io.Writer) (err error) {
	var t *target
	if cfg.redisAddr == "" {
		t = openMemory()
	} else if t, err = openRedis(ctx, cfg.redisAddr, cfg.conc+8); err != nil {
		return err
	}
	defer func() {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		err = errors.Join(err, t.close(cleanup))
	}()
	if cfg.cpuProfile != "" {
		stopProfile, perr := startCPUProfile(cfg.cpuProfile)
		if perr != nil {
			return perr
		}
		defer func() { err = errors.Join(err, stopProfile()) }()
	}
	if t.scripts >= manyScripts && !t.functions {
		fmt.Fprintf(stderr, "loadtest: warning: the server caches %d scripts, which makes every EVALSHA slower (the store's too, on a server without functions); "+
			"its Redis rows measure that as well. On a server of your own, SCRIPT FLUSH empties the cache: the store loads its scripts again when it needs them.\n", t.scripts)
	}
	p := newProgress(stderr)
	defer p.stop()
	r := &runner{cfg: cfg, t: t, progress: p}
	rep := newReport(t.name, cfg)
	for _, sc := range scenarios {
		if !cfg.run.MatchString(sc.name) {
			continue
		}
		res, err := sc.run(r, ctx)
		rep.Results = append(rep.Results, res...)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
	}
	p.stop()
	if cfg.json {
		return rep.writeJSON(stdout)
	}
	return rep.writeTable(stdout)
}

// startCPUProfile starts writing a CPU profile to the file at path; stop ends it.
func startCPUProfile(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
