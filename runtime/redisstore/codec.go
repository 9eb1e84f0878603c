package redisstore

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// parseStored decodes a stored entry, "<version>|<createdAt>|<updatedAt>|<expiresAt>|<value>"
// with times in Unix milliseconds, as the scripts write it.
func parseStored(key, s string) (backend.Entry, error) {
	e, value, err := parseHead(key, s)
	if err != nil {
		return backend.Entry{}, err
	}
	e.Value = []byte(value)
	return e, nil
}

// parseHead decodes a stored entry but its value, which it returns as it is.
func parseHead(key, s string) (backend.Entry, string, error) {
	var n [4]int64
	for i := range n {
		v, rest, ok := cutNumber(s)
		if !ok {
			return backend.Entry{}, "", fmt.Errorf("redisstore: malformed stored entry of %q", key)
		}
		n[i], s = v, rest
	}
	return backend.Entry{
		Key:       key,
		Version:   uint64(n[0]),
		CreatedAt: n[1],
		UpdatedAt: n[2],
		ExpiresAt: n[3],
	}, s, nil
}

// cutNumber parses the decimal digits that s starts with, up to a '|', and returns their value
// and the rest of s after the '|'. At most 18 digits, so that the value cannot overflow.
func cutNumber(s string) (v int64, rest string, ok bool) {
	for i := 0; i < len(s) && i <= 18; i++ {
		c := s[i]
		switch {
		case c == '|' && i > 0:
			return v, s[i+1:], true
		case c < '0' || c > '9':
			return 0, "", false
		}
		v = v*10 + int64(c-'0')
	}
	return 0, "", false
}

// parseEvent decodes one stream entry written by the scripts' emit: its ID is "<version>-0"
// and its fields are p (epoch), t (kind), k (key), a (time) and, by kind, c (createdAt),
// e (expiresAt), v (value), r (reason).
func parseEvent(id string, fields map[string]any) (backend.Event, error) {
	bad := func(what string) (backend.Event, error) {
		return backend.Event{}, fmt.Errorf("redisstore: malformed event %q: %s", id, what)
	}
	seqText, ok := strings.CutSuffix(id, "-0")
	if !ok {
		return bad("id")
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil || seq == 0 {
		return bad("id")
	}
	str := func(name string) string { s, _ := fields[name].(string); return s }
	msec := func(name string) (int64, bool) {
		v, err := strconv.ParseInt(str(name), 10, 64)
		return v, err == nil
	}
	epoch := str("p")
	if !backend.ValidEpoch(epoch) {
		return bad("epoch")
	}
	at, ok := msec("a")
	if !ok {
		return bad("time")
	}
	ev := backend.Event{Epoch: epoch, Version: seq, Key: str("k"), At: at}
	switch str("t") {
	case "u":
		ev.Kind = backend.EventUpsert
		created, ok1 := msec("c")
		expires, ok2 := msec("e")
		if !ok1 || !ok2 {
			return bad("upsert times")
		}
		ev.CreatedAt, ev.ExpiresAt, ev.Value = created, expires, []byte(str("v"))
	case "t", "x":
		ev.Kind = backend.EventTouch
		if str("t") == "x" {
			ev.Kind = backend.EventExpire
		}
		if ev.ExpiresAt, ok = msec("e"); !ok {
			return bad("expiry")
		}
	case "d":
		ev.Kind = backend.EventDelete
		ev.Reason = str("r")
	default:
		return bad("kind")
	}
	return ev, nil
}

// parseEntries decodes stream entries as a script returns them: {{id, {field, value, ...}}, ...}.
func parseEntries(raw []any) ([]backend.Event, error) {
	evs := make([]backend.Event, 0, len(raw))
	for _, r := range raw {
		pair, _ := r.([]any)
		if len(pair) != 2 {
			return nil, fmt.Errorf("redisstore: malformed stream entry %v", r)
		}
		id, _ := pair[0].(string)
		flat, _ := pair[1].([]any)
		fields := make(map[string]any, len(flat)/2)
		for i := 0; i+1 < len(flat); i += 2 {
			name, _ := flat[i].(string)
			fields[name] = flat[i+1]
		}
		ev, err := parseEvent(id, fields)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, nil
}
