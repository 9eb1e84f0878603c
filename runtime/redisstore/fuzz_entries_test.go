package redisstore

import (
	"strings"
	"testing"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// FuzzParseEntries feeds parseEntries stream replies of any shape: a malformed reply is an
// error, never a panic, and what parses is an event with a version and an epoch, or junk (kind
// 0) to skip.
func FuzzParseEntries(f *testing.F) {
	f.Add("7-0", "p\x000123abcd\x00a\x001700000000000\x00e\x00 u 1:k 1 2 2:{}", uint8(0))
	f.Add("8-1", "p\x000123abcd\x00a\x001\x00e\x00 d 1:k 0 0 3:bye t 1:j 0 5 0:", uint8(1))
	f.Add("x", "p", uint8(2))
	f.Fuzz(func(t *testing.T, id, fields string, shape uint8) {
		flat := []any{}
		for _, s := range strings.Split(fields, "\x00") {
			flat = append(flat, s)
		}
		var entry any
		switch shape % 4 {
		case 0:
			entry = []any{id, flat}
		case 1:
			entry = []any{id, flat, "extra"}
		case 2:
			entry = []any{id, fields} // fields not a list
		case 3:
			entry = id // not a pair
		}
		evs, err := parseEntries([]any{entry, entry})
		if err != nil {
			return
		}
		for _, ev := range evs {
			if ev.Kind != 0 && (ev.Version == 0 || !backend.ValidEpoch(ev.Epoch)) {
				t.Fatalf("parseEntries(%q, %q) = %+v", id, fields, ev)
			}
		}
	})
}
