package redisstore

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"pgregory.net/rapid"
)

// crc16 is the CRC16-XMODEM checksum Redis Cluster uses for key slots.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// keySlot computes a key's cluster slot as Redis does, hash tags included.
func keySlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) % 16384
}

func TestKeySlotKnownValues(t *testing.T) {
	// Values from the Redis documentation of CLUSTER KEYSLOT.
	for key, want := range map[string]uint16{"somekey": 11058, "foo{hash_tag}": 2515, "bar{hash_tag}": 2515} {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
}

// unescape undoes escape; it fails on text escape cannot produce.
func unescape(t *rapid.T, s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ':', '{', '}':
			t.Fatalf("unescaped %q in %q", c, s)
		case '%':
			if i+2 >= len(s) {
				t.Fatalf("short escape in %q", s)
			}
			var v byte
			for _, h := range s[i+1 : i+3] {
				v = v<<4 | byte(strings.IndexRune("0123456789ABCDEF", h))
			}
			b.WriteByte(v)
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// parseKeys recovers (id, tenant) from a tenant's key: together with the round trip this
// proves that distinct pairs never share a key.
func parseKeys(t *rapid.T, prefix, key string) (id, tenant string) {
	rest, ok := strings.CutPrefix(key, prefix+":{")
	if !ok {
		t.Fatalf("key %q lacks the prefix", key)
	}
	tag, _, ok := strings.Cut(rest, "}")
	if !ok {
		t.Fatalf("key %q lacks the hash tag end", key)
	}
	id, tenant, ok = strings.Cut(tag, ":")
	if !ok || strings.Contains(tenant, ":") {
		t.Fatalf("hash tag %q is not <id>:<tenant>", tag)
	}
	return unescape(t, id), unescape(t, tenant)
}

func TestTenantKeysInjectiveOneSlot(t *testing.T) {
	// Mostly the bytes that matter, plus any byte at all.
	part := rapid.OneOf(
		rapid.StringOfN(rapid.SampledFrom([]rune{'%', ':', '{', '}', 'a', '2', 'F'}), 1, 12, -1),
		rapid.StringN(1, 24, -1),
		rapid.Custom(func(t *rapid.T) string { return string(rapid.SliceOfN(rapid.Byte(), 1, 16).Draw(t, "bytes")) }),
	)
	prefix := rapid.StringMatching(`[a-z:%-]{1,8}`)
	rapid.Check(t, func(t *rapid.T) {
		p := prefix.Draw(t, "prefix")
		id1, ten1 := part.Draw(t, "id1"), part.Draw(t, "tenant1")
		id2, ten2 := part.Draw(t, "id2"), part.Draw(t, "tenant2")
		k1, k2 := tenantKeys(keyBase(p, id1), ten1), tenantKeys(keyBase(p, id2), ten2)
		for i := range k1 {
			if gotID, gotTenant := parseKeys(t, p, k1[i]); gotID != id1 || gotTenant != ten1 {
				t.Fatalf("key %q parses as (%q, %q), want (%q, %q)", k1[i], gotID, gotTenant, id1, ten1)
			}
			if keySlot(k1[i]) != keySlot(k1[0]) {
				t.Fatalf("keys %q and %q are in different slots", k1[0], k1[i])
			}
			if (id1 != id2 || ten1 != ten2) && k1[i] == k2[i] {
				t.Fatalf("(%q, %q) and (%q, %q) share key %q", id1, ten1, id2, ten2, k1[i])
			}
		}
	})
}

func TestNewRejectsBadPrefix(t *testing.T) {
	for _, p := range []string{"", "a{b", "a}b"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New with prefix %q did not panic", p)
				}
			}()
			New(nil, WithKeyPrefix(p))
		}()
	}
}

// A Ring, whose pub/sub would subscribe every tenant's channel on one shard, is refused.
func TestNewRejectsRing(t *testing.T) {
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1", "b": "127.0.0.1:2"}})
	defer ring.Close()
	defer func() {
		if msg, _ := recover().(string); !strings.Contains(msg, "*redis.Ring is not supported") {
			t.Errorf("New with a Ring: panic %q, want one that says a Ring is not supported", msg)
		}
	}()
	New(ring)
}

// The slots computed here are those of a real cluster.
func TestKeySlotMatchesCluster(t *testing.T) {
	f := newCluster(t)
	part := rapid.StringOfN(rapid.SampledFrom([]rune{'%', ':', '{', '}', 'a', 'é'}), 1, 8, -1)
	rapid.Check(t, func(rt *rapid.T) {
		for _, key := range tenantKeys(keyBase("p", part.Draw(rt, "id")), part.Draw(rt, "tenant")) {
			got, err := f.client.ClusterKeySlot(context.Background(), key).Result()
			if err != nil || uint16(got) != keySlot(key) {
				rt.Fatalf("CLUSTER KEYSLOT %q = %d, %v; computed %d", key, got, err, keySlot(key))
			}
		}
	})
}
