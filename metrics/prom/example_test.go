package prom_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/metrics/prom"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
	"github.com/prometheus/client_golang/prometheus"
)

// textCodec stores a string as its bytes.
type textCodec struct{}

func (textCodec) Encode(dst []byte, v *string) ([]byte, error) { return append(dst, *v...), nil }
func (textCodec) Decode(src []byte, v *string) error           { *v = string(src); return nil }

// A backend reporting to the adapter, registered with a Prometheus registry (serve it with
// promhttp.HandlerFor): a reader gets one event.
func Example() {
	obs := prom.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(obs)
	b := memstore.New(memstore.WithObserver(obs))
	defer b.Close()

	store, err := ephemeral.New(b, ephemeral.Config[string, string]{ID: "greetings", TTL: time.Minute, Codec: textCodec{}})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	r, err := store.Reader(ctx)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	if _, err := store.Upsert(ctx, "hello", "world"); err != nil {
		panic(err)
	}
	if _, err := r.Recv(ctx); err != nil {
		panic(err)
	}

	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		if f.GetName() != "ephemeral_events_delivered_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			fmt.Print(f.GetName(), "{")
			for i, l := range m.GetLabel() {
				if i > 0 {
					fmt.Print(",")
				}
				fmt.Printf("%s=%q", l.GetName(), l.GetValue())
			}
			fmt.Println("}", m.GetCounter().GetValue())
		}
	}
	// Output:
	// ephemeral_events_delivered_total{kind="delete",store="greetings"} 0
	// ephemeral_events_delivered_total{kind="expire",store="greetings"} 0
	// ephemeral_events_delivered_total{kind="touch",store="greetings"} 0
	// ephemeral_events_delivered_total{kind="upsert",store="greetings"} 1
}
