package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsBucket is a NATS JetStream key-value bucket of the run's own, to compare the delivery
// rows with: Put is the upsert, a watcher the reader. The writer and the watcher have a
// connection each, as two processes would (on one connection, the watcher's message comes
// in before Put's acknowledgement, always).
type natsBucket struct {
	nc, watchNC *nats.Conn
	js          jetstream.JetStream
	kv, watchKV jetstream.KeyValue
}

// openNATS connects to the NATS server at addr and creates a bucket of a unique name in
// memory storage, with one revision per key (History 1), as a store keeps one value per key.
func openNATS(ctx context.Context, addr string) (_ *natsBucket, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var b natsBucket
	defer func() {
		if err != nil {
			b.closeConns()
		}
	}()
	connect := func() (*nats.Conn, jetstream.JetStream, error) {
		nc, err := nats.Connect("nats://"+addr, nats.Name("ephemeral-loadtest"), nats.Timeout(2*time.Second), nats.NoReconnect())
		if err != nil {
			return nil, nil, err
		}
		js, err := jetstream.New(nc)
		return nc, js, err
	}
	if b.nc, b.js, err = connect(); err != nil {
		return nil, err
	}
	bucket := "loadtest-" + strings.ToLower(rand.Text())
	if b.kv, err = b.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 1, Storage: jetstream.MemoryStorage}); err != nil {
		return nil, fmt.Errorf("create bucket: %w", err)
	}
	var watchJS jetstream.JetStream
	if b.watchNC, watchJS, err = connect(); err == nil {
		b.watchKV, err = watchJS.KeyValue(ctx, bucket)
	}
	if err != nil {
		return nil, errors.Join(err, b.js.DeleteKeyValue(ctx, bucket))
	}
	return &b, nil
}

// closeConns closes the connections that are open.
func (b *natsBucket) closeConns() {
	for _, nc := range []*nats.Conn{b.nc, b.watchNC} {
		if nc != nil {
			nc.Close()
		}
	}
}

// close deletes the bucket and closes the connections.
func (b *natsBucket) close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := b.js.DeleteKeyValue(ctx, b.kv.Bucket())
	b.closeConns()
	if err != nil {
		return fmt.Errorf("nats: delete bucket %s: %w", b.kv.Bucket(), err)
	}
	return nil
}

// natsDelivery runs the delivery rows of one writer at -rate and flat out on a NATS KV bucket
// watched by one watcher, or, when no JetStream server answers at -nats, one row that says it
// was skipped.
func (r *runner) natsDelivery(ctx context.Context) ([]result, error) {
	b, err := openNATS(ctx, r.cfg.natsAddr)
	if err != nil {
		return []result{{Scenario: "nats kv watch", Note: fmt.Sprintf("skipped: no JetStream server at %s: %v", r.cfg.natsAddr, err)}}, nil
	}
	var out []result
	for _, row := range []struct {
		name string
		rate int
	}{
		{fmt.Sprintf("nats kv watch rate=%d/s", r.cfg.rate), r.cfg.rate},
		{"nats kv watch flat out c=1", 0},
	} {
		res, err := r.natsRow(ctx, b, row.name, row.rate)
		out = append(out, res)
		if err != nil {
			return out, errors.Join(err, b.close(context.WithoutCancel(ctx)))
		}
	}
	return out, b.close(context.WithoutCancel(ctx))
}

// natsRow writes -events values of the same encoding as the delivery rows' upserts with Put,
// from one writer at rate per second (0: flat out), and records for each the time from Put's
// return to the watcher's receipt of it.
func (r *runner) natsRow(ctx context.Context, b *natsBucket, name string, rate int) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.maxTime)
	defer cancel()
	kv := b.kv
	w, err := b.watchKV.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return result{Scenario: name}, fmt.Errorf("nats: watch: %w", err)
	}
	defer w.Stop()
	n := r.cfg.events
	epoch := time.Now()
	written := make([]atomic.Int64, n) // when the Put of Seq i returned, ns since epoch, +1
	started := make([]atomic.Int64, n) // when it was called
	h, sinceCall := new(hist), new(hist)
	recvErr := make(chan error, 1)
	go func() { recvErr <- receiveNATS(ctx, w, written, started, epoch, h, sinceCall) }()
	start, cpu := time.Now(), cpuTime()
	var buf []byte
	_, err = r.spread(ctx, name, n, 1, func(ctx context.Context, i int) error {
		if rate > 0 {
			if err := waitUntil(ctx, start.Add(time.Duration(i)*time.Second/time.Duration(rate))); err != nil {
				return err
			}
		}
		var err error
		if buf, err = (SampleCodec{}).Encode(buf[:0], &Sample{Seq: i, Status: "online"}); err != nil {
			return err
		}
		started[i].Store(int64(time.Since(epoch)))
		if _, err := kv.Put(ctx, "k-"+strconv.Itoa(i%numKeys), buf); err != nil {
			return fmt.Errorf("nats: put: %w", err)
		}
		written[i].Store(int64(time.Since(epoch)) + 1)
		return nil
	})
	if err != nil {
		cancel()
	}
	err = errors.Join(err, <-recvErr)
	res := fromHist(name, h, time.Since(start), cpuTime()-cpu)
	res.setSinceCall(sinceCall)
	res.Missing = n - res.Count
	if res.Missing > 0 && ctx.Err() != nil {
		res.Note = stoppedNote
	}
	return res, err
}

// receiveNATS reads the watcher's updates until it has one of every Seq of written or ctx is
// done, and records the delay of each after its Put returned in h, and after it was called
// (started) in sinceCall.
func receiveNATS(ctx context.Context, w jetstream.KeyWatcher, written, started []atomic.Int64, epoch time.Time, h, sinceCall *hist) error {
	var v Sample
	for got := 0; got < len(written); {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil // out of time: the rest counts as missing
		case u, ok := <-w.Updates():
			if !ok {
				return errors.New("nats: the watcher stopped")
			}
			e = u
		}
		if e == nil || e.Operation() != jetstream.KeyValuePut {
			continue // the end of the initial values, or a delete
		}
		now := int64(time.Since(epoch))
		if err := (SampleCodec{}).Decode(e.Value(), &v); err != nil {
			return fmt.Errorf("nats: decode %q: %w", e.Value(), err)
		}
		if v.Seq < 0 || v.Seq >= len(written) {
			return fmt.Errorf("nats: value of unknown seq %d", v.Seq)
		}
		if t := written[v.Seq].Load(); t != 0 {
			h.record(time.Duration(now - t + 1))
		} else {
			h.record(0) // it arrived before its Put returned
		}
		sinceCall.record(time.Duration(now - started[v.Seq].Load()))
		got++
	}
	return nil
}
