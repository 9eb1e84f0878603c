package redisstore

import "strings"

// keySuffixes end the names of a tenant's keys, indexed by their place in the scripts' KEYS.
var keySuffixes = [numKeys]string{keyState: "state", keyExp: "exp", keyEvents: "events"}

// keyBase returns the start of the key names of store ID id, up to its tenant's part:
// "<prefix>:{<id>:", with id escaped.
func keyBase(prefix, id string) string { return prefix + ":{" + escape(id) + ":" }

// tenantKeys returns the Redis keys of one tenant of the store whose keyBase is base:
// <prefix>:{<id>:<tenant>}:state, :exp and :events, with id and tenant escaped so that
// the hash tag is all of "<id>:<tenant>" and no two pairs share a key.
//
// The names are cut from one string, made in one allocation (a tenant's keys live as long as
// one another): opening a reader in a new tenant, or its first write, makes them.
func tenantKeys(base, tenant string) []string {
	t := escape(tenant)
	size := 0
	for _, s := range keySuffixes {
		size += len(base) + len(t) + len("}:") + len(s)
	}
	var b strings.Builder
	b.Grow(size)
	var ends [len(keySuffixes)]int
	for i, s := range keySuffixes {
		b.WriteString(base)
		b.WriteString(t)
		b.WriteString("}:")
		b.WriteString(s)
		ends[i] = b.Len()
	}
	all := b.String()
	keys := make([]string, len(keySuffixes))
	start := 0
	for i, end := range ends {
		keys[i], start = all[start:end], end
	}
	return keys
}

// escape percent-escapes the bytes that would make key names ambiguous or break the hash tag:
// '%', ':', '{' and '}'. Every other byte is kept.
func escape(s string) string {
	if !strings.ContainsAny(s, "%:{}") {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '%', ':', '{', '}':
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
