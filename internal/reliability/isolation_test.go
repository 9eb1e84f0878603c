package reliability

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/redisstore"
	"github.com/redis/go-redis/v9"
)

// adversarial are store IDs and tenants that a careless key layout confuses: the bytes the
// layout escapes, escapes written out, empty parts between separators, hash tags, unicode and
// the longest allowed (256 bytes).
var adversarial = []string{
	"{", "}", ":", "%", "::", "a:", ":b", "a:b", "a%3Ab", "%3A", "{a}", "}{", "%7B",
	"é", "日本語", strings.Repeat("}:%{", 64), strings.Repeat("é", 128),
}

func TestIsolationAdversarialMiniredis(t *testing.T) {
	m := miniredis.RunT(t)
	testAdversarial(t, redis.NewClient(&redis.Options{Addr: m.Addr()}), false)
}

func TestIsolationAdversarialRedis(t *testing.T) { testAdversarial(t, redistest.Client(t), false) }

func TestIsolationAdversarialCluster(t *testing.T) { testAdversarial(t, redistest.Cluster(t), true) }

// testAdversarial writes one entry in every (ID, tenant) pair of adversarial names and checks
// that each pair sees only its own, that each pair has its own hash tag and that all keys of a
// tag share a hash slot (by CLUSTER KEYSLOT on a cluster, where the scripts would fail with
// CROSSSLOT otherwise).
func testAdversarial(t *testing.T, client redis.UniversalClient, cluster bool) {
	ctx := t.Context()
	prefix := testPrefix()
	b := redisstore.New(client, redisstore.WithKeyPrefix(prefix))
	t.Cleanup(func() {
		b.Close()
		_, _ = redistest.DeleteKeys(context.Background(), client, prefix)
		client.Close()
	})
	type pair struct{ id, tenant string }
	var pairs []pair
	for _, id := range adversarial {
		for _, tenant := range adversarial {
			pairs = append(pairs, pair{id, tenant})
		}
	}
	for i, p := range pairs {
		s := newStore(t, b, p.id, ephemeral.Limits{})
		if _, err := s.Upsert(ctx, "k", strconv.Itoa(i), ephemeral.WithTenant(p.tenant)); err != nil {
			t.Fatalf("upsert in (%q, %q): %v", p.id, p.tenant, err)
		}
	}
	for i, p := range pairs {
		s := newStore(t, b, p.id, ephemeral.Limits{})
		snap, err := s.Snapshot(ctx, ephemeral.WithTenant(p.tenant))
		if err != nil {
			t.Fatalf("snapshot of (%q, %q): %v", p.id, p.tenant, err)
		}
		if len(snap.Entries) != 1 || snap.Entries[0].Value != strconv.Itoa(i) || snap.Entries[0].Version != 1 {
			t.Fatalf("(%q, %q) shares its state with another pair: %+v", p.id, p.tenant, snap.Entries)
		}
	}

	keys, err := redistest.Keys(ctx, client, prefix)
	if err != nil {
		t.Fatal(err)
	}
	byTag := map[string][]string{}
	for _, k := range keys {
		open, end := strings.IndexByte(k, '{'), strings.IndexByte(k, '}')
		if open < 0 || end < open {
			t.Fatalf("key %q has no hash tag", k)
		}
		byTag[k[open+1:end]] = append(byTag[k[open+1:end]], k)
	}
	if len(byTag) != len(pairs) {
		t.Fatalf("%d pairs have %d distinct hash tags", len(pairs), len(byTag))
	}
	if !cluster {
		return
	}
	for tag, keys := range byTag {
		want, err := client.ClusterKeySlot(ctx, "{"+tag+"}").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if got, err := client.ClusterKeySlot(ctx, k).Result(); err != nil || got != want {
				t.Fatalf("CLUSTER KEYSLOT %q = %d, %v; the tag's slot is %d", k, got, err, want)
			}
		}
	}
	t.Logf("%d pairs, %d keys, each pair's keys in one slot", len(pairs), len(keys))
}

// abandon writes short-lived entries in two tenants, reads one with a reader and a mirror
// that are closed again, and returns the time of the last expiry.
func abandon(t *testing.T, b ephemeral.Backend, ttl, retention time.Duration) {
	ctx := t.Context()
	s := newStore(t, b, "abandoned", ephemeral.Limits{EventRetention: retention})
	for i, tenant := range []string{"t1", "t:{2}"} {
		for j := range 3 {
			if _, err := s.Upsert(ctx, "k"+strconv.Itoa(j), "v", ephemeral.WithTenant(tenant), ephemeral.WithTTL(ttl*time.Duration(i+1))); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, err := s.Reader(ctx, ephemeral.WithTenant("read-only"))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	m, err := s.Mirror(nil, ephemeral.WithTenant("t1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	m.Close()
}

// An abandoned tenant leaves no key in Redis once its entries expired and the event retention
// (with its quarter of slack) passed: miniredis, whose clock moves TIME and key TTLs.
func TestIsolationNoKeysLeftMiniredis(t *testing.T) {
	m := miniredis.RunT(t)
	now := start
	m.SetTime(now)
	m.ClockTTL(true)
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()
	b := redisstore.New(client)
	defer b.Close()
	abandon(t, b, 10*time.Second, time.Minute)
	if keys, _ := redistest.Keys(t.Context(), client, redisstore.DefaultKeyPrefix); len(keys) < 7 {
		t.Fatalf("keys before expiry: %q, want 3 of each written tenant and the reader's state", keys)
	}
	// The longest TTL is 20 s; the keys live at most a retention and a quarter longer.
	now = now.Add(20*time.Second + time.Minute + time.Minute/4)
	m.SetTime(now)
	if keys, err := redistest.Keys(t.Context(), client, redisstore.DefaultKeyPrefix); err != nil || len(keys) != 0 {
		t.Fatalf("keys left after expiry and retention: %q, %v", keys, err)
	}
}

// The same on a real server, in real time, with a short TTL and retention. The pumps' wake
// streams are the exception: they expire a minute after their pump's last use (see
// runtime/redisstore's package doc), too long to wait for here, so they are checked to carry
// that expiry.
func TestIsolationNoKeysLeftRedis(t *testing.T) {
	client := redistest.Client(t)
	prefix := testPrefix()
	b := redisstore.New(client, redisstore.WithKeyPrefix(prefix), redisstore.WithPollInterval(100*time.Millisecond))
	defer b.Close()
	defer redistest.DeleteKeys(context.Background(), client, prefix)
	abandon(t, b, 200*time.Millisecond, 400*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var data []string
	for {
		keys, err := redistest.Keys(ctx, client, prefix)
		if err == nil {
			data = data[:0]
			for _, k := range keys {
				if !strings.Contains(k, ":wake:") {
					data = append(data, k)
				} else if ttl, err := client.PTTL(ctx, k).Result(); err == nil && (ttl == -1 || ttl > time.Minute) {
					// -1: no expiry; -2 (gone since the scan) is fine.
					t.Fatalf("wake stream %q has PTTL %v, want at most a minute", k, ttl)
				}
			}
			if len(data) == 0 {
				return
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("keys left %v after the last expiry (400 ms) and the retention (400 ms): %q", waitFor, data)
		}
	}
}
