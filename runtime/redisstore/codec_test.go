package redisstore

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

func FuzzParseStored(f *testing.F) {
	f.Add("3|1700000000000|1700000000001|1700000003600|{\"a\":1}")
	f.Add("1|2|3|4|")
	f.Add("1|2|3|")
	f.Add("-1|2|3|4|x")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := parseStored("k", s)
		if err != nil {
			return
		}
		// What parses is what encode writes: re-encoding gives the input back, unless the
		// numbers had leading zeros or a plus sign.
		again := encodeStored(e.Version, e.CreatedAt, e.UpdatedAt, e.ExpiresAt, e.Value)
		e2, err := parseStored("k", again)
		if err != nil || e2.Version != e.Version || e2.ExpiresAt != e.ExpiresAt || !bytes.Equal(e2.Value, e.Value) {
			t.Fatalf("%q: re-encoded %q parses as %+v, %v", s, again, e2, err)
		}
	})
}

// encodeStored writes an entry as the scripts do.
func encodeStored(v uint64, c, u, e int64, value []byte) string {
	return fmt.Sprintf("%d|%d|%d|%d|%s", v, c, u, e, value)
}

// FuzzParseEntry checks that parseEntry never fails on any stream entry: what it decodes is
// the events of versions up to the ID's first part, as many as its second part says, each of
// the entry's epoch and time, and encoded again they decode the same; anything else is one
// event of kind 0 (junk) at the ID's first part.
func FuzzParseEntry(f *testing.F) {
	f.Add("7-0", "0123abcd", "1700000000000", " u 1:k 1699999999999 1700000001000 2:{}")
	f.Add("9-2", "0123abcd", "1", " x 1:a 0 2 0: t 1:b 0 3 0: d 1:c 0 0 3:bye")
	f.Add("9-1", "0123abcd", "1", " x 1:a 0 2 0:")
	f.Add("1-1", "0123abcd", "1", " x 1:a 0 2 0: x 1:a 0 2 0:")
	f.Add("3", "0123abcd", "1", " x 1:a 0 2 0:")
	f.Fuzz(func(t *testing.T, id, p, a, e string) {
		fields := map[string]string{fieldEpoch: p, fieldAt: a, fieldEvents: e}
		evs := parseEntry(id, func(name string) string { return fields[name] })
		if len(evs) == 1 && evs[0].Kind == 0 {
			if !reflect.DeepEqual(evs[0], backend.Event{Version: idSeq(id)}) {
				t.Fatalf("parseEntry(%q, %q) = junk %+v", id, fields, evs[0])
			}
			return
		}
		last := evs[len(evs)-1].Version
		for i, ev := range evs {
			if ev.Kind == 0 || ev.Epoch != p || ev.At != evs[0].At || ev.Version != last-uint64(len(evs)-1-i) || ev.Version == 0 {
				t.Fatalf("parseEntry(%q, %q): event %d is %+v", id, fields, i, ev)
			}
		}
		again := map[string]string{fieldEpoch: p, fieldAt: fmt.Sprint(evs[0].At), fieldEvents: encodeEvents(evs)}
		id2 := fmt.Sprintf("%d-%d", last, len(evs)-1)
		if got := parseEntry(id2, func(name string) string { return again[name] }); !reflect.DeepEqual(got, evs) {
			t.Fatalf("parseEntry(%q, %q) = %+v; encoded again as %q, %q: %+v", id, fields, evs, id2, again, got)
		}
	})
}
