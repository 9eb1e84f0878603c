package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// subBits is the number of bits of a duration that a histogram bucket keeps: 32 buckets per
// power of two, so a reported percentile is at most about 3% above the true one.
const subBits = 5

// numBuckets covers durations up to 2^41 ns, about 36 minutes.
const numBuckets = (41 - subBits) << subBits

// hist is a log-linear histogram of durations, safe for concurrent use: many goroutines may
// record into one without a lock.
type hist struct {
	counts [numBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

// bucket returns the index of the bucket of d nanoseconds.
func bucket(d int64) int {
	e := max(0, bits.Len64(uint64(d))-subBits-1)
	return min(e<<subBits+int(d>>e), numBuckets-1)
}

// upper returns the largest duration in bucket i.
func upper(i int) time.Duration {
	if i < 2<<subBits {
		return time.Duration(i)
	}
	e := i>>subBits - 1
	m := i - e<<subBits
	return time.Duration((m+1)<<e - 1)
}

// record adds d to the histogram; a negative d counts as 0.
func (h *hist) record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucket(v)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// count returns the number of recorded durations.
func (h *hist) count() int { return int(h.n.Load()) }

// quantile returns the upper bound of the bucket holding the q-quantile (0 < q <= 1), capped
// at the largest recorded duration; 0 when nothing was recorded.
func (h *hist) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(upper(i), h.maxDuration())
		}
	}
	return h.maxDuration()
}

// maxDuration returns the largest recorded duration.
func (h *hist) maxDuration() time.Duration { return time.Duration(h.max.Load()) }
