package redisstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
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
	want := backend.Snapshot{
		Entries: []backend.Entry{
			{Key: "a/1", Value: []byte("o|n|e"), Version: 9, Epoch: epoch, CreatedAt: 102, UpdatedAt: 202, ExpiresAt: 2002},
			{Key: "a/10", Value: []byte{}, Version: 5, Epoch: epoch, CreatedAt: 101, UpdatedAt: 201, ExpiresAt: 2001},
			{Key: "a/2", Value: []byte("two"), Version: 4, Epoch: epoch, CreatedAt: 100, UpdatedAt: 200, ExpiresAt: 2000},
		},
		Cursor: backend.Cursor{Epoch: epoch, Seq: 9},
	}
	var snap backend.Snapshot
	for _, resp3 := range []bool{false, true} {
		var err error
		snap, err = parseSnapshot(hgetallReply(state, resp3), 1000, "a/", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, snap); diff != "" {
			t.Fatalf("snapshot of RESP3 %v (-want +got):\n%s", resp3, diff)
		}
	}
	// Into a used slice, whose slots it sets field by field: nothing of the old entries stays.
	used := make([]backend.Entry, 4)
	for i := range used {
		used[i] = backend.Entry{Key: "junk", Value: []byte("junk"), Version: 77, Epoch: "junk",
			CreatedAt: -1, UpdatedAt: -1, ExpiresAt: -1, Memo: new(backend.Memo)}
	}
	got, err := parseSnapshot(hgetallReply(state, true), 1000, "a/", used[:1], nil)
	if err != nil {
		t.Fatal(err)
	}
	samePtr := cmp.Comparer(func(a, b *backend.Memo) bool { return a == b })
	if diff := cmp.Diff(append([]backend.Entry{used[0]}, want.Entries...), got.Entries, samePtr); diff != "" {
		t.Fatalf("snapshot appended to a used slice (-want +got):\n%s", diff)
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
		if snap, err := parseSnapshot(hgetallReply(state, true), 0, "", nil, nil); err == nil {
			t.Errorf("parseSnapshot(%q) = %+v, want an error", state, snap)
		}
	}
	good := string(hgetallReply(map[string]string{"#epoch": epoch, "kk": "1|2|3|4|v"}, false))
	for _, reply := range []string{
		"",
		"*",
		"*1\r\n$6\r\n#epoch\r\n",               // an odd array
		"%1\r\n$6\r\n#epoch\r\n",               // a pair cut short
		"%1\r\n$6\r\n#epoch\r\n:1\r\n",         // not a bulk string
		"%1\r\n$6\r\n#epoch\r\n$99\r\nabc\r\n", // a length beyond the end
		"%1\r\n$6\r\n#epoch\r\n$-1\r\n",        // a nil
		"%1\r\n$6\r\n#epochxx$3\r\nabc\r\n",    // no CRLF after a string
		"%\r\n",                                // no length
		"%99999999999999999999999\r\n",         // a length beyond the reply
		good + "+OK\r\n",                       // more than one reply
		good[:len(good)-1],                     // cut short
		"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
	} {
		if snap, err := parseSnapshot([]byte(reply), 0, "", nil, nil); err == nil {
			t.Errorf("parseSnapshot(%q) = %+v, want an error", reply, snap)
		}
	}
	// An error reply is a redis.Error, for scriptError.
	_, err := parseSnapshot([]byte("-WRONGTYPE Operation against a key\r\n"), 0, "", nil, nil)
	if re, ok := err.(redis.Error); !ok || re.Error() != "WRONGTYPE Operation against a key" {
		t.Errorf("error reply: %v (%T), want a redis.Error", err, err)
	}
}

// hgetallReply returns the bytes of an HGETALL reply of state, in RESP3 (a map) or RESP2 (an
// array).
func hgetallReply(state map[string]string, resp3 bool) []byte {
	b := fmt.Appendf(nil, "*%d\r\n", 2*len(state))
	if resp3 {
		b = fmt.Appendf(nil, "%%%d\r\n", len(state))
	}
	for name, value := range state {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n$%d\r\n%s\r\n", len(name), name, len(value), value)
	}
	return b
}

// FuzzParseSnapshot feeds parseSnapshot replies of any bytes: never a panic, and what parses
// is sorted and live; and the same again with working memory a parse of another reply used
// (a store reuses it), and after it, that reply's parse as with memory of its own.
func FuzzParseSnapshot(f *testing.F) {
	epoch := backend.NewEpoch(time.Now())
	f.Add(hgetallReply(map[string]string{"#epoch": epoch, "#seq": "3", "ka": "1|2|3|4|v", "kb": "2|2|3|9|w"}, true), "")
	f.Add(hgetallReply(map[string]string{"#epoch": epoch, "ka": "1|2|3|4|", "k": "2|2|3|9|w"}, false), "a")
	other := hgetallReply(map[string]string{"#epoch": epoch, "#seq": "9", "kb": "1|2|3|9|x", "ka/1": "2|2|3|9|", "kz": "3|2|3|9|zz"}, true)
	want, err := parseSnapshot(other, 5, "", nil, nil)
	if err != nil || len(want.Entries) != 3 {
		f.Fatalf("the other reply: %+v, %v", want, err)
	}
	f.Fuzz(func(t *testing.T, reply []byte, prefix string) {
		var sc snapScratch
		if _, err := parseSnapshot(other, 5, "", nil, &sc); err != nil {
			t.Fatal(err)
		}
		snap, err := parseSnapshot(reply, 5, prefix, nil, &sc)
		if fresh, ferr := parseSnapshot(reply, 5, prefix, nil, nil); !cmp.Equal(snap, fresh) || (err == nil) != (ferr == nil) {
			t.Fatalf("parseSnapshot(%q, %q) with memory reused = %+v, %v; with its own %+v, %v", reply, prefix, snap, err, fresh, ferr)
		}
		if again, err := parseSnapshot(other, 5, "", nil, &sc); err != nil || !cmp.Equal(again, want) {
			t.Fatalf("the other reply after %q: %+v, %v; want %+v", reply, again, err, want)
		}
		if err != nil {
			return
		}
		for i, e := range snap.Entries {
			if e.ExpiresAt <= 5 || !strings.HasPrefix(e.Key, prefix) || i > 0 && snap.Entries[i-1].Key >= e.Key {
				t.Fatalf("parseSnapshot(%q, %q) = %+v", reply, prefix, snap)
			}
		}
	})
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
	reply := hgetallReply(state, true)
	b.Run("parse", func(b *testing.B) {
		var sc snapScratch // as a store reuses it
		for b.Loop() {
			snap, err := parseSnapshot(reply, 1700000000000, "", nil, &sc)
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
		for _, i := range byteOrder(keys, nil) {
			got = append(got, keys[i])
		}
		want := slices.Sorted(slices.Values(keys))
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: byteOrder gives %q, want %q", round, got, want)
		}
	}
}

// sortTop sorts as slices.Sort does, for any number of top bytes and sizes on both sides of
// its radix sort.
func TestSortTop(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, size := range []int{0, 1, 255, 256, 1000, 5000} {
		for n := 1; n <= (64-bits.Len(uint(size)))/8; n++ { // as byteOrder packs them
			shift := 64 - 8*n
			xs := make([]uint64, size)
			for i := range xs {
				top := rng.Uint64() >> shift
				if rng.IntN(2) == 0 {
					top &= 0x0f0f // equal bytes, and bytes equal throughout
				}
				xs[i] = top<<shift | uint64(i)
			}
			want := slices.Sorted(slices.Values(xs))
			sortTop(xs, n)
			if !slices.Equal(xs, want) {
				t.Fatalf("size %d, %d bytes: sortTop differs from slices.Sort", size, n)
			}
		}
	}
}

// Snapshot reads HGETALL's reply as bytes: a RESP3 map or, on a client of RESP2, an array; an
// error reply (a state key of the wrong type) is ErrCorrupt.
func TestSnapshotProtocolsMiniredis(t *testing.T) {
	testSnapshotProtocols(t, miniredis.RunT(t).Addr())
}

func TestSnapshotProtocolsRedis(t *testing.T) {
	addr := os.Getenv(redistest.EnvAddr)
	if addr == "" {
		t.Skipf("set %s to run against a real Redis server", redistest.EnvAddr)
	}
	testSnapshotProtocols(t, addr)
}

func testSnapshotProtocols(t *testing.T, addr string) {
	ctx := context.Background()
	for _, protocol := range []int{2, 3} {
		client := redis.NewClient(&redis.Options{Addr: addr, Protocol: protocol})
		t.Cleanup(func() { client.Close() })
		f := newOn(t, client, nil)
		st := f.open(t, backend.Limits{})
		for _, k := range []string{"b", "a", "c"} {
			if _, err := st.Upsert(ctx, "t", backend.UpsertRequest{Key: k, Value: []byte("v-" + k), TTL: time.Minute}); err != nil {
				t.Fatal(err)
			}
		}
		snap, err := st.Snapshot(ctx, "t", "")
		if err != nil || len(snap.Entries) != 3 || snap.Entries[0].Key != "a" || string(snap.Entries[2].Value) != "v-c" || snap.Cursor.Seq != 3 {
			t.Fatalf("RESP%d: snapshot %+v, %v", protocol, snap, err)
		}
		state := st.keys("junk")[keyState]
		if err := client.Set(ctx, state, "x", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Snapshot(ctx, "junk", ""); !errors.Is(err, backend.ErrCorrupt) || !strings.Contains(err.Error(), "state key is not a hash") {
			t.Fatalf("RESP%d: snapshot of a state key of the wrong type: %v, want ErrCorrupt naming the state key", protocol, err)
		}
	}
}

// parseNumbers decodes what strconv decodes of four fields of 1 to maxDigits digits, each
// ended by a '|', and fails where they are not that, for numbers of every length around
// maxDigits and bytes that are no digits.
func TestParseNumbers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const bad = "|a/: +-\x80\xb0\xff" // bytes that are no digits
	for round := range 20000 {
		var b strings.Builder
		for range 4 {
			l := rng.IntN(maxDigits + 3)
			digits := make([]byte, l)
			for i := range digits {
				digits[i] = byte('0' + rng.IntN(10))
			}
			if round%3 == 0 && l > 0 {
				digits[rng.IntN(l)] = bad[rng.IntN(len(bad))]
			}
			b.Write(digits)
			b.WriteByte('|')
		}
		b.WriteString("value")
		s := b.String()
		var want [4]int64
		fields, rest := strings.SplitN(s, "|", 5)[:4], s
		ok := true
		for k, f := range fields {
			v, err := strconv.ParseInt(f, 10, 64)
			ok = ok && err == nil && len(f) <= maxDigits && f[0] != '+' && f[0] != '-'
			want[k], rest = v, rest[len(f)+1:]
		}
		var got, gotB [4]int64
		skip, gotOK := parseNumbers(s, &got)
		skipB, gotBOK := parseNumbers([]byte(s), &gotB)
		if gotOK != ok || ok && (got != want || s[skip:] != rest) || gotB != got || skipB != skip || gotBOK != gotOK {
			t.Fatalf("parseNumbers(%q) = %v, %d, %v; strconv gives %v, %q, %v", s, got, skip, gotOK, want, rest, ok)
		}
	}
}

func TestSnapshotBurstMiniredis(t *testing.T) { testSnapshotBurst(t, newMini(t)) }
func TestSnapshotBurstRedis(t *testing.T)     { testSnapshotBurst(t, newReal(t)) }

// testSnapshotBurst checks that the snapshots of one tenant that wait for one in flight share
// one read, made after they were asked for: each holds every write that returned before, in
// entries of its own; and that those of another tenant or prefix do not wait for it.
func testSnapshotBurst(t *testing.T, f fixture) {
	ctx := context.Background()
	st := f.open(t, backend.Limits{})
	upsert(t, st, "room", "a/1", "v1", time.Hour)
	upsert(t, st, "other", "k", "v1", time.Hour)
	room := st.keys("room")[keyState]
	h := holdFirst(func(cmd redis.Cmder) bool { return cmd.Name() == "hgetall" && cmd.Args()[1] == room }) // the room's reads
	f.client.AddHook(h)
	first := make(chan error, 1)
	go func() {
		_, err := st.Snapshot(ctx, "room", "")
		first <- err
	}()
	<-h.held
	// Another tenant, and a prefix of the same one, are read meanwhile.
	if snap, err := st.Snapshot(ctx, "other", ""); err != nil || len(snap.Entries) != 1 {
		t.Fatalf("snapshot of another tenant while one is in flight: %+v, %v", snap, err)
	}
	if snap, err := st.Snapshot(ctx, "room", "a/"); err != nil || len(snap.Entries) != 1 {
		t.Fatalf("snapshot of a prefix while the whole tenant's is in flight: %+v, %v", snap, err)
	}
	// Written after the first snapshot was asked for, before the others are.
	e := upsert(t, st, "room", "b", "v2", time.Hour)
	const n = 40
	snaps := make([]backend.Snapshot, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var err error
			snaps[i], err = st.Snapshot(ctx, "room", "")
			errs <- err
		}()
	}
	waitQueued(t, &st.snaps, snapKey{"room", ""}, n)
	close(h.release)
	recvErrs(t, first, 1)
	recvErrs(t, errs, n)
	if got := h.n.Load(); got != 3 {
		t.Errorf("%d reads of the tenant for one snapshot, one of a prefix and %d that waited, want 3", got, n)
	}
	for i, snap := range snaps {
		if len(snap.Entries) != 2 || snap.Entries[1].Key != "b" || snap.Entries[1].Version != e.Version || snap.Cursor.Seq < e.Version {
			t.Fatalf("snapshot %d: %+v, want both entries, b at version %d", i, snap, e.Version)
		}
	}
	snaps[0].Entries[0].Key = "scribbled"
	for _, snap := range snaps[1:] {
		if snap.Entries[0].Key != "a/1" {
			t.Fatalf("a snapshot's entries changed with another's: %+v", snap.Entries[0])
		}
	}
}

func TestSnapshotNewTenantMiniredis(t *testing.T) { testSnapshotNewTenant(t, newMini(t)) }
func TestSnapshotNewTenantRedis(t *testing.T)     { testSnapshotNewTenant(t, newReal(t)) }

// testSnapshotNewTenant checks that the snapshot of a tenant with no state reads it once and
// makes its meta with the open script, and is empty at version 0 of the epoch the writes then
// use; and that one whose tenant is written between its read and the open script reads it
// again, and holds the write.
func testSnapshotNewTenant(t *testing.T, f fixture) {
	ctx := context.Background()
	st := f.open(t, backend.Limits{})
	subscribe(t, st, "warm", nil).Close() // the open script loaded: each open below is one call
	reads := countCmds(func(cmd redis.Cmder) bool { return cmd.Name() == "hgetall" })
	opens := countCmds(isOpen)
	f.client.AddHook(reads)
	f.client.AddHook(opens)
	snap, err := st.Snapshot(ctx, "new", "")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Entries == nil || len(snap.Entries) != 0 || snap.Cursor.Seq != 0 {
		t.Fatalf("snapshot of a new tenant: %+v, want no entries (not nil) at version 0", snap)
	}
	if r, o := reads.n.Load(), opens.n.Load(); r != 1 || o != 1 {
		t.Errorf("snapshot of a new tenant: %d reads and %d opens, want 1 and 1", r, o)
	}
	sub := subscribe(t, st, "new", &snap.Cursor)
	defer sub.Close()
	e := upsert(t, st, "new", "k", "v1", time.Hour)
	if e.Epoch != snap.Cursor.Epoch || e.Version != 1 {
		t.Fatalf("the first upsert after the snapshot: epoch %q version %d, want %q and 1", e.Epoch, e.Version, snap.Cursor.Epoch)
	}
	if ev := next(t, sub); ev.Version != 1 || string(ev.Value) != "v1" {
		t.Fatalf("a reader after the snapshot's cursor got %+v, want the upsert of version 1", ev)
	}

	// A write between the read and the open script: read again.
	h := holdFirst(isOpen)
	f.client.AddHook(h)
	type result struct {
		snap backend.Snapshot
		err  error
	}
	done := make(chan result, 1)
	go func() {
		snap, err := st.Snapshot(ctx, "raced", "")
		done <- result{snap, err}
	}()
	<-h.held
	e = upsert(t, st, "raced", "k", "v1", time.Hour) // makes the meta: the held open finds it
	close(h.release)
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if len(res.snap.Entries) != 1 || res.snap.Entries[0].Version != e.Version || res.snap.Cursor != (backend.Cursor{Epoch: e.Epoch, Seq: e.Version}) {
		t.Fatalf("snapshot of a tenant written before its open script ran: %+v, want the upsert of version %d", res.snap, e.Version)
	}
}
