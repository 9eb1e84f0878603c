package redisstore

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/google/go-cmp/cmp"
)

// parseSnapshot keeps the live entries of the prefix, sorted by key, with every field.
func TestParseSnapshot(t *testing.T) {
	epoch := backend.NewEpoch(time.Now())
	state := map[string]string{
		"#epoch": epoch,
		"#seq":   "9",
		"#due":   "1000",
		"ka/2":   "4|100|200|2000|two",
		"ka/10":  "5|101|201|2001|",
		"ka/1":   "9|102|202|2002|o|n|e",
		"ka/old": "3|103|203|1000|expired at now",
		"kb":     "6|104|204|2003|other prefix",
	}
	snap, err := parseSnapshot(state, 1000, "a/")
	if err != nil {
		t.Fatal(err)
	}
	want := backend.Snapshot{
		Entries: []backend.Entry{
			{Key: "a/1", Value: []byte("o|n|e"), Version: 9, Epoch: epoch, CreatedAt: 102, UpdatedAt: 202, ExpiresAt: 2002},
			{Key: "a/10", Value: []byte{}, Version: 5, Epoch: epoch, CreatedAt: 101, UpdatedAt: 201, ExpiresAt: 2001},
			{Key: "a/2", Value: []byte("two"), Version: 4, Epoch: epoch, CreatedAt: 100, UpdatedAt: 200, ExpiresAt: 2000},
		},
		Cursor: backend.Cursor{Epoch: epoch, Seq: 9},
	}
	if diff := cmp.Diff(want, snap); diff != "" {
		t.Fatalf("snapshot (-want +got):\n%s", diff)
	}

	// The values share one allocation, but appending to one leaves the next alone.
	_ = append(snap.Entries[1].Value, "xx"...)
	if got := string(snap.Entries[2].Value); got != "two" {
		t.Fatalf("after an append to the value before it, a value is %q, want %q", got, "two")
	}
}

func TestParseSnapshotMalformed(t *testing.T) {
	epoch := backend.NewEpoch(time.Now())
	for _, state := range []map[string]string{
		{"#seq": "1"},
		{"#epoch": "not an epoch", "#seq": "1"},
		{"#epoch": epoch, "#seq": "x"},
		{"#epoch": epoch, "#seq": "1", "kk": "1|2|3|"},
		{"#epoch": epoch, "#seq": "1", "kk": "1|2|+3|4|v"},
		{"#epoch": epoch, "#seq": "1", "kk": "1|2|3|99999999999999999999|v"},
	} {
		if snap, err := parseSnapshot(state, 0, ""); err == nil {
			t.Errorf("parseSnapshot(%q) = %+v, want an error", state, snap)
		}
	}
}

// BenchmarkParseSnapshot10k measures the Go side of a snapshot of 10,000 entries: filtering,
// sorting and parsing the fields of the state hash. The baseline only sorts the field names.
//
//	go test -run '^$' -bench ParseSnapshot ./runtime/redisstore
func BenchmarkParseSnapshot10k(b *testing.B) {
	state := map[string]string{"#epoch": backend.NewEpoch(time.Now()), "#seq": "10000"}
	value := `{"room":"lobby","userId":"u-123456","status":"online"}`
	for i := range 10_000 {
		state[fmt.Sprintf("kuser-%05d", i)] = fmt.Sprintf("%d|1700000000000|1700000000000|1700003600000|%s", i+1, value)
	}
	b.Run("baseline=sort-names", func(b *testing.B) {
		for b.Loop() {
			if names := slices.Sorted(maps.Keys(state)); len(names) != len(state) {
				b.Fatalf("%d names", len(names))
			}
		}
	})
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			snap, err := parseSnapshot(state, 1700000000000, "")
			if err != nil || len(snap.Entries) != 10_000 {
				b.Fatalf("%d entries, %v", len(snap.Entries), err)
			}
		}
	})
}

// byteOrder sorts as slices.Sort does, for keys that share prefixes, differ only far behind
// them, end where others go on, and hold the bytes 0 and 255.
func TestByteOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		keys := make([]string, rng.IntN(40))
		for i := range keys {
			b := []byte("shared/")
			for range rng.IntN(14) {
				b = append(b, "\x00ab\xff"[rng.IntN(4)])
			}
			keys[i] = string(b)
		}
		got := make([]string, 0, len(keys))
		for _, i := range byteOrder(keys) {
			got = append(got, keys[i])
		}
		want := slices.Sorted(slices.Values(keys))
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: byteOrder gives %q, want %q", round, got, want)
		}
	}
}
