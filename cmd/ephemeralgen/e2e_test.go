package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const e2eModel = `package main

// RoomID names a room.
type RoomID string

// Presence is one user's presence in a room.
//
//ephemeral:store id=presence ttl=30s key=Room,UserID
type Presence struct {
	Room   string ` + "`json:\"room\"`" + `
	UserID string ` + "`json:\"userId\"`" + `
	Status string ` + "`json:\"status\"`" + `
}

// Seat is a held seat.
//
//ephemeral:store id=seats ttl=1m key=Room,Row,Number name=Hold
type Seat struct {
	Room   RoomID
	Row    int16
	Number uint
	Holder string
}

// Note has plain string keys.
//
//ephemeral:store id=notes ttl=10s
type Note struct {
	Text string ` + "`json:\"text\"`" + `
}
`

const e2eMain = `package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	clock := memstore.NewFakeClock(time.Unix(1_700_000_000, 0))
	b := memstore.New(memstore.WithClock(clock))
	defer b.Close()

	ps, err := NewPresenceStore(b)
	check(err)
	// A store of the same id with plain string keys writes keys that PresenceKey cannot parse.
	foreign, err := ephemeral.New(b, ephemeral.Config[string, Presence]{ID: "presence", TTL: time.Minute, Codec: PresenceCodec{}})
	check(err)
	r, err := ps.Reader(ctx)
	check(err)
	defer r.Close()

	for _, p := range []Presence{{"r:1", "alice%", "here"}, {"r:1", "bob", "away"}, {"r", "1:carol", "here"}} {
		e, err := ps.Put(ctx, p)
		check(err)
		fmt.Printf("put %q v%d\n", e.Key.String(), e.Version)
	}
	e, ok, err := ps.Get(ctx, PresenceKey{Room: "r:1", UserID: "bob"})
	check(err)
	fmt.Printf("get %v %s %q\n", ok, fields(e.Key), e.Value.Status)
	snap, err := ps.Snapshot(ctx, ephemeral.WithPrefix(PresenceKeyPrefix("r:1")))
	check(err)
	for _, e := range snap.Entries {
		fmt.Printf("snapshot %s %s\n", fields(e.Key), e.Value.Status)
	}
	t, err := ps.Touch(ctx, PresenceKey{Room: "r", UserID: "1:carol"}, ephemeral.WithTTL(time.Minute))
	check(err)
	fmt.Printf("touch %v v%d\n", t.OK, t.Version)
	removed, err := ps.Remove(ctx, PresenceKey{Room: "r:1", UserID: "bob"}, ephemeral.WithReason("left"))
	check(err)
	fmt.Println("remove", removed)
	_, err = foreign.Upsert(ctx, "foreign", Presence{}, ephemeral.WithTTL(40*time.Second))
	check(err)
	clock.Advance(41 * time.Second)

	for range 8 {
		ev, err := r.Recv(ctx)
		switch {
		case errors.Is(err, ephemeral.ErrInvalidKey):
			fmt.Println("event error:", err)
		case err != nil:
			log.Fatal(err)
		case ev.Kind == ephemeral.EventUpsert:
			fmt.Printf("event %v %s %s\n", ev.Kind, fields(ev.Key), ev.Value.Status)
		default:
			fmt.Printf("event %v %s %s\n", ev.Kind, fields(ev.Key), ev.Reason)
		}
	}

	// A mirror: the initial sync (a foreign key is reported, not passed on), a live change,
	// and an expiry by the fake clock, which the mirror must also read.
	_, err = foreign.Upsert(ctx, "foreign2", Presence{})
	check(err)
	changes, errs := make(chan ephemeral.Change[PresenceKey, Presence], 8), make(chan error, 8)
	m, err := ps.Mirror(func(c ephemeral.Change[PresenceKey, Presence]) { changes <- c },
		ephemeral.WithMirrorClock(clock.Now),
		ephemeral.OnMirrorError(func(err error) { errs <- err }))
	check(err)
	defer m.Close()
	check(m.Ready(ctx))
	fmt.Println("mirror error:", receive(ctx, errs))
	printChange(receive(ctx, changes))
	for k, e := range m.All() {
		fmt.Printf("mirror all %s %s v%d\n", fields(k), e.Value.Status, e.Version)
	}
	fmt.Printf("mirror len %d\n", m.Len())
	_, err = ps.Put(ctx, Presence{"r:1", "dave", "here"}, ephemeral.WithTTL(5*time.Second))
	check(err)
	printChange(receive(ctx, changes))
	dave := PresenceKey{Room: "r:1", UserID: "dave"}
	_, ok = m.Get(dave)
	fmt.Println("mirror get dave", ok)
	clock.Advance(5 * time.Second)
	printChange(receive(ctx, changes))
	_, ok = m.Get(dave)
	fmt.Println("mirror get dave", ok)

	hs, err := NewHoldStore(b, ephemeral.WithDefaultTenant("venue"))
	check(err)
	for _, s := range []Seat{{"hall", 3, 7, "ann"}, {"hall", 3, 8, "ben"}, {"hall", -1, 1, "cat"}} {
		_, err := hs.Put(ctx, s)
		check(err)
	}
	seats, err := hs.Snapshot(ctx, ephemeral.WithPrefix(HoldKeyPrefix2("hall", 3)))
	check(err)
	for _, e := range seats.Entries {
		fmt.Printf("seat %q %q %d %d %s\n", e.Key.String(), e.Key.Room, e.Key.Row, e.Key.Number, e.Value.Holder)
	}
	k, err := ParseHoldKey("hall:+3:7")
	fmt.Printf("parse non-canonical: %v %v\n", k == HoldKey{}, errors.Is(err, ephemeral.ErrInvalidKey))

	ns, err := NewNoteStore(b)
	check(err)
	_, err = ns.Upsert(ctx, "n:1", Note{Text: "hi"})
	check(err)
	n, ok, err := ns.Get(ctx, "n:1")
	check(err)
	fmt.Printf("note %v %q %q %v\n", ok, n.Key, n.Value.Text, ns.DefaultTTL())
}

// printChange shows a change of the mirror, with its cause if it is a removal.
func printChange(c ephemeral.Change[PresenceKey, Presence]) {
	fmt.Printf("mirror %v %s %s v%d", c.Kind, fields(c.Key), c.Entry.Value.Status, c.Version)
	if c.Kind == ephemeral.ChangeRemoved {
		fmt.Print(" ", c.Cause)
	}
	fmt.Println()
}

// receive returns the next value of ch; it fails when ctx is done first.
func receive[V any](ctx context.Context, ch <-chan V) V {
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		log.Fatal(ctx.Err())
		panic("unreachable")
	}
}

// fields shows the fields of a key, quoted.
func fields(k PresenceKey) string { return fmt.Sprintf("%q/%q", k.Room, k.UserID) }

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
`

const e2eWant = `put "r%3A1:alice%25" v1
put "r%3A1:bob" v2
put "r:1%3Acarol" v3
get true "r:1"/"bob" "away"
snapshot "r:1"/"alice%" here
snapshot "r:1"/"bob" away
touch true v4
remove true
event upsert "r:1"/"alice%" here
event upsert "r:1"/"bob" away
event upsert "r"/"1:carol" here
event touch "r"/"1:carol" 
event delete "r:1"/"bob" left
event error: ephemeral: invalid key: "foreign" has 1 parts, want 2
event expire "r:1"/"alice%" 
event error: ephemeral: invalid key: "foreign" has 1 parts, want 2
mirror error: ephemeral: invalid key: "foreign2" has 1 parts, want 2
mirror added "r"/"1:carol" here v4
mirror all "r"/"1:carol" here v4
mirror len 1
mirror added "r:1"/"dave" here v10
mirror get dave true
mirror removed "r:1"/"dave" here v11 expire
mirror get dave false
seat "hall:3:7" "hall" 3 7 ann
seat "hall:3:8" "hall" 3 8 ben
parse non-canonical: true true
note true "n:1" "hi" 10s
`

// TestEndToEnd generates three stores into a program, then vets and runs it on memstore.
func TestEndToEnd(t *testing.T) {
	mod, dir := tempPackage(t, "e2e")
	writeTree(t, dir, map[string]string{"model.go": e2eModel, "main.go": e2eMain})
	if code, stdout, stderr := runIn(t, dir); code != 0 {
		t.Fatalf("ephemeralgen: %d %s %s", code, stdout, stderr)
	}
	goCmd(t, mod, "vet", "./e2e")
	got := goCmd(t, mod, "run", "./e2e")
	if got != e2eWant {
		t.Errorf("output:\n%s", unifiedDiff("want", "got", e2eWant, got))
	}
	if strings.Contains(got, "panic") {
		t.Fatal(got)
	}
}

const edgeModel = `package main

import (
	"fmt"
	"strconv"
	"strings"
)

// Temp has a value-receiver MarshalJSON and a pointer-receiver UnmarshalJSON.
type Temp float64

// MarshalJSON writes t as a string with a unit.
func (t Temp) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(strconv.FormatFloat(float64(t), 'f', -1, 64) + "C")), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (t *Temp) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return err
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "C"), 64)
	*t = Temp(f)
	return err
}

// Word has pointer-receiver text methods.
type Word string

// MarshalText writes the word in brackets.
func (w *Word) MarshalText() ([]byte, error) { return []byte("<" + string(*w) + ">"), nil }

// UnmarshalText reads what MarshalText writes.
func (w *Word) UnmarshalText(b []byte) error {
	if len(b) < 2 {
		return fmt.Errorf("bad word %q", b)
	}
	*w = Word(b[1 : len(b)-1])
	return nil
}

// Edge has the fields whose generated code is spared tests of values known to be nil or not.
//
//ephemeral:store id=edge ttl=1s
type Edge struct {
	OmitT *Temp                     ` + "`json:\"ot,omitempty\"`" + `
	OmitW *Word                     ` + "`json:\"ow,omitempty\"`" + `
	OmitS []int                     ` + "`json:\"os,omitempty\"`" + `
	OmitM map[string]int            ` + "`json:\"om,omitempty\"`" + `
	MT    map[string]*Temp          ` + "`json:\"mt\"`" + `
	MW    map[string]*Word          ` + "`json:\"mw\"`" + `
	MM    map[string]map[string]int ` + "`json:\"mm\"`" + `
	MPP   map[string]**int          ` + "`json:\"mpp\"`" + `
	MS    map[string][]string       ` + "`json:\"ms\"`" + `
}
`

const edgeMain = `package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
)

func main() {
	for _, src := range []string{
		` + "`{}`" + `,
		` + "`{\"ot\":\"1.5C\",\"ow\":\"<hi>\",\"os\":[1,2],\"om\":{\"a\":1}}`" + `,
		` + "`{\"mt\":{\"a\":\"2C\",\"b\":null},\"mw\":{\"a\":\"<x>\",\"b\":null}}`" + `,
		` + "`{\"mm\":{\"a\":{\"x\":1},\"b\":null,\"c\":{}},\"mpp\":{\"a\":3,\"b\":null},\"ms\":{\"a\":[\"x\"],\"b\":null,\"c\":[]}}`" + `,
		` + "`{\"mt\":null,\"mw\":null,\"mm\":null,\"mpp\":null,\"ms\":null}`" + `,
	} {
		var want, got Edge
		wantErr := json.Unmarshal([]byte(src), &want)
		gotErr := EdgeCodec{}.Decode([]byte(src), &got)
		if (wantErr == nil) != (gotErr == nil) || !reflect.DeepEqual(want, got) {
			fmt.Printf("decode %s: got %+v, %v; want %+v, %v\n", src, got, gotErr, want, wantErr)
			continue
		}
		wantJSON, _ := json.Marshal(&want)
		gotJSON, err := EdgeCodec{}.Encode(nil, &got)
		if err != nil || !bytes.Equal(wantJSON, gotJSON) {
			fmt.Printf("encode %s: got %s, %v; want %s\n", src, gotJSON, err, wantJSON)
			continue
		}
		fmt.Println("ok", string(gotJSON))
	}
}
`

// TestCodecEdges runs codecs whose generated code omits the tests of values known to be nil
// (a fresh map value) or known not to be (a member that omitempty tested), and compares them
// with encoding/json.
func TestCodecEdges(t *testing.T) {
	mod, dir := tempPackage(t, "edge")
	writeTree(t, dir, map[string]string{"model.go": edgeModel, "main.go": edgeMain})
	if code, stdout, stderr := runIn(t, dir); code != 0 {
		t.Fatalf("ephemeralgen: %d %s %s", code, stdout, stderr)
	}
	goCmd(t, mod, "vet", "./edge")
	got := goCmd(t, mod, "run", "./edge")
	if strings.Count(got, "ok ") != 5 || strings.Contains(got, "code:") {
		t.Errorf("output:\n%s", got)
	}
	src, err := os.ReadFile(filepath.Join(dir, "model_ephemeral.go"))
	if err != nil {
		t.Fatal(err)
	}
	// Each omitempty field is tested once by its encoder (!= nil, or len != 0) and, but for
	// the slice, once more by its decoder, which allocates it.
	for test, n := range map[string]int{"v.OmitT == nil": 1, "v.OmitW == nil": 1, "v.OmitS == nil": 0, "v.OmitM == nil": 1} {
		if got := strings.Count(string(src), test); got != n {
			t.Errorf("generated code has %q %d times, want %d", test, got, n)
		}
	}
	if dead := regexp.MustCompile(`if \*?y == nil \{\s+\*?y = |\by = nil\b`).Find(src); dead != nil {
		t.Errorf("generated code tests or sets a fresh map value that is known to be nil: %q", dead)
	}
}
