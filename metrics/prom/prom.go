// Package prom counts what ephemeral's backends report into Prometheus metrics: an
// [Observer] is a [backend.Observer] to hand to a backend and a [prometheus.Collector] to
// register.
//
//	obs := prom.New()
//	prometheus.MustRegister(obs)
//	b := redisstore.New(client, redisstore.WithObserver(obs)) // or memstore.WithObserver(obs)
//
// Every metric has a "store" label, the store ID: store IDs are few and fixed by the program.
// None has a tenant label: tenants (rooms, users, sessions) are unbounded, and a label per
// tenant would make a time series per tenant in Prometheus. The metrics are
//
//	ephemeral_events_delivered_total{store,kind}    counter: events readers got (kind: upsert, touch, delete, expire)
//	ephemeral_overflows_total{store}                counter: overflow events readers got
//	ephemeral_delivery_lag_seconds{store}           histogram: how long after its change a reader got an event
//	ephemeral_catchup_reads_total{store}            counter: reads of readers that fell behind their shared feed
//	ephemeral_write_batch_size{store}               histogram: writes applied per call (runtime/redisstore)
//	ephemeral_entries_expired_total{store}          counter: entries the backend's expiry removed
//	ephemeral_writes_refused_total{store,reason}    counter: writes the tenant's state refused (reason: capacity, conflict)
//	ephemeral_readers{store}                        gauge: readers open (a reader of a closed backend is not)
//	ephemeral_backend_errors_total{store,call}      counter: failed calls to the backend's storage, by script or command
//	ephemeral_states_lost_total{store}              counter: tenants whose state a write found lost (runtime/redisstore)
//	ephemeral_lock_leases_lost_total{store,reason}  counter: leases of package lock lost while held (reason: deadline, gone)
//
// An Observer is also a lock.Observer (package github.com/ephemeral-go/ephemeral/lock), to
// hand to lock.WithObserver: the lock leases lost are counted by the Locker, not the backend.
//
// docs/RELIABILITY.md ("Operations") says what each tells an operator. The package is apart
// from the backends, so that they do not depend on Prometheus; it is the only package of the
// module that does.
package prom

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/prometheus/client_golang/prometheus"
)

// Observer is a [backend.Observer] that counts into Prometheus metrics, and the
// [prometheus.Collector] of those metrics. Make one with [New]; it is safe for concurrent use,
// and one Observer may serve any number of backends. Each call costs some tens of nanoseconds
// and allocates nothing once its store ID has been seen.
type Observer struct {
	delivered *prometheus.CounterVec
	overflows *prometheus.CounterVec
	lag       *prometheus.HistogramVec
	catchUps  *prometheus.CounterVec
	batches   *prometheus.HistogramVec
	expired   *prometheus.CounterVec
	refused   *prometheus.CounterVec
	errors    *prometheus.CounterVec
	readers   *prometheus.GaugeVec
	lost      *prometheus.CounterVec
	leases    *prometheus.CounterVec

	stores sync.Map // store ID -> *storeMetrics
}

var (
	_ backend.Observer     = (*Observer)(nil)
	_ prometheus.Collector = (*Observer)(nil)
)

// LagBuckets are the buckets of ephemeral_delivery_lag_seconds, in seconds: from a millisecond,
// the backends' resolution, to a minute.
var LagBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// BatchBuckets are the buckets of ephemeral_write_batch_size: powers of two up to 64, the
// largest batch of runtime/redisstore.
var BatchBuckets = []float64{1, 2, 4, 8, 16, 32, 64}

// New returns an Observer with all its metrics at zero.
func New() *Observer {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append([]string{"store"}, labels...))
	}
	histogram := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, []string{"store"})
	}
	return &Observer{
		delivered: counter("ephemeral_events_delivered_total",
			"Events that readers got from the backend, by store ID and kind; overflow events are in ephemeral_overflows_total.", "kind"),
		overflows: counter("ephemeral_overflows_total",
			"Overflow events that readers got: a reader fell behind the retained events, or the tenant's state was lost, and starts over from a snapshot."),
		lag: histogram("ephemeral_delivery_lag_seconds",
			"How long after its change a reader got an event, by the backend's clock (the Redis server's time against this process's for Redis).", LagBuckets),
		catchUps: counter("ephemeral_catchup_reads_total",
			"Reads from the backend's storage by readers that fell behind the feed they share with the tenant's other readers."),
		batches: histogram("ephemeral_write_batch_size",
			"Writes of a tenant applied in one call to the backend's storage (Redis: group commit; 1 when no other write was in flight).", BatchBuckets),
		expired: counter("ephemeral_entries_expired_total",
			"Entries that the backend's expiry removed, each with an expire event."),
		readers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ephemeral_readers",
			Help: "Readers open on the backend (mirrors and lock waiters among them), by store ID; one that only grows is a leak: readers never closed."}, []string{"store"}),
		refused: counter("ephemeral_writes_refused_total",
			"Writes that the tenant's state refused, by store ID and reason: capacity (an upsert of a new key in a tenant at its MaxEntries) or conflict (a write's condition did not hold, a contended lock's acquire among them).", "reason"),
		lost: counter("ephemeral_states_lost_total",
			"Tenants whose state a write found made anew (a new epoch) sooner after this process's last write than it could have expired: the backend lost it (Redis: a restart without persistence, a FLUSHALL, a failover, an eviction). Counted once per process that had written the tenant within its event retention."),
		leases: counter("ephemeral_lock_leases_lost_total",
			"Leases of package lock lost while held, by the Locker's store ID and reason: deadline (no extend succeeded before the lease's local deadline: the backend slow or unreachable, or the process stalled) or gone (the backend no longer held the lease: it expired, or the lock's state was lost).", "reason"),
		errors: counter("ephemeral_backend_errors_total",
			"Failed calls to the backend's storage, by script or command (Redis: write, get, read, open, tick, snapshot; and with an empty store label poll, pubsub and config, which serve every store); calls whose context ended are not counted.", "call"),
	}
}

// Init makes the metrics of the store IDs exist, at zero, before the backends report anything
// of them: a dashboard or an alert on a counter's rate sees zero rather than no data. A metric
// of a store ID appears by itself with the first report of the ID; the errors of a call with
// the call's first error.
func (o *Observer) Init(stores ...string) {
	for _, id := range stores {
		o.store(id)
	}
}

// storeMetrics are the metrics of one store ID, resolved once.
type storeMetrics struct {
	delivered [backend.EventExpire + 1]prometheus.Counter // by kind
	overflows prometheus.Counter
	lag       prometheus.Observer
	catchUps  prometheus.Counter
	batches   prometheus.Observer
	expired   prometheus.Counter
	capacity  prometheus.Counter // refused writes, by reason
	conflicts prometheus.Counter
	readers   prometheus.Gauge
	lost      prometheus.Counter
}

// store returns the metrics of the store ID id.
func (o *Observer) store(id string) *storeMetrics {
	if m, ok := o.stores.Load(id); ok {
		return m.(*storeMetrics)
	}
	key := id
	id = label(id)
	m := &storeMetrics{
		overflows: o.overflows.WithLabelValues(id),
		lag:       o.lag.WithLabelValues(id),
		catchUps:  o.catchUps.WithLabelValues(id),
		batches:   o.batches.WithLabelValues(id),
		expired:   o.expired.WithLabelValues(id),
		capacity:  o.refused.WithLabelValues(id, "capacity"),
		conflicts: o.refused.WithLabelValues(id, "conflict"),
		readers:   o.readers.WithLabelValues(id),
		lost:      o.lost.WithLabelValues(id),
	}
	for k := backend.EventUpsert; k <= backend.EventExpire; k++ {
		m.delivered[k] = o.delivered.WithLabelValues(id, k.String())
	}
	actual, _ := o.stores.LoadOrStore(key, m)
	return actual.(*storeMetrics)
}

// label returns s as a label value: with U+FFFD for the bytes that are not UTF-8, which
// Prometheus refuses with a panic. (A store of package ephemeral has a UTF-8 ID; a backend
// used directly may be given another.)
func label(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// Delivered counts an event a reader got and, but for an overflow, its lag (a negative age,
// from skewed clocks, counts as none).
func (o *Observer) Delivered(store, tenant string, kind backend.EventKind, age time.Duration) {
	m := o.store(store)
	switch {
	case kind == backend.EventOverflow:
		m.overflows.Inc()
		return
	case kind > 0 && int(kind) < len(m.delivered):
		m.delivered[kind].Inc()
	default:
		o.delivered.WithLabelValues(label(store), kind.String()).Inc()
	}
	m.lag.Observe(max(age, 0).Seconds())
}

// CatchUp counts a catch-up read.
func (o *Observer) CatchUp(store, tenant string) { o.store(store).catchUps.Inc() }

// WriteBatch records the size of a write batch.
func (o *Observer) WriteBatch(store, tenant string, n int) {
	o.store(store).batches.Observe(float64(n))
}

// Expired counts n expired entries.
func (o *Observer) Expired(store, tenant string, n int) { o.store(store).expired.Add(float64(n)) }

// Error counts a failed call to the backend's storage.
func (o *Observer) Error(store, tenant, call string, err error) {
	o.errors.WithLabelValues(label(store), call).Inc()
}

// Refused counts a write the tenant's state refused, by its reason: capacity or conflict, or
// other for an error that is neither (which no backend of the module reports).
func (o *Observer) Refused(store, tenant string, err error) {
	m := o.store(store)
	switch {
	case errors.Is(err, backend.ErrCapacity):
		m.capacity.Inc()
	case errors.Is(err, backend.ErrConflict):
		m.conflicts.Inc()
	default:
		o.refused.WithLabelValues(label(store), "other").Inc()
	}
}

// Readers adds delta to the open readers of the store.
func (o *Observer) Readers(store, tenant string, delta int) {
	o.store(store).readers.Add(float64(delta))
}

// StateLost counts a tenant whose state was lost.
func (o *Observer) StateLost(store, tenant string) { o.store(store).lost.Inc() }

// LeaseLost counts a lease of package lock lost while held, by reason: deadline or gone, or
// other for another value. Its series appear with the first loss of a store and reason, not at
// [Observer.Init]: lock losses are rare, and a store that is no Locker's has none.
func (o *Observer) LeaseLost(store, name, reason string) {
	if reason != "deadline" && reason != "gone" {
		reason = "other"
	}
	o.leases.WithLabelValues(label(store), reason).Inc()
}

func (o *Observer) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.delivered, o.overflows, o.lag, o.catchUps, o.batches, o.expired, o.refused, o.errors, o.readers, o.lost, o.leases}
}

// Describe sends the descriptors of the metrics; see [prometheus.Collector].
func (o *Observer) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range o.collectors() {
		c.Describe(ch)
	}
}

// Collect sends the metrics; see [prometheus.Collector].
func (o *Observer) Collect(ch chan<- prometheus.Metric) {
	for _, c := range o.collectors() {
		c.Collect(ch)
	}
}
