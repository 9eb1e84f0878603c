// Package redistest connects the tests of this module to real Redis servers: the environment
// variables that name them, clients that skip the test when a variable is not set, the
// removal of the keys a test leaves behind, and redis-servers that a test starts, stops and
// restarts itself (Server). .ci/run sets the variables to servers it starts on loopback ports;
// without them, only the tests on memory and miniredis run.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// The environment variables that name real servers for the tests.
const (
	EnvAddr    = "EPHEMERAL_REDIS_ADDR"    // host:port of a standalone server
	EnvCluster = "EPHEMERAL_REDIS_CLUSTER" // comma-separated addresses of cluster nodes
	// EnvSentinel names a Sentinel-managed master: <master name>@<sentinel addr>[,<addr>...].
	EnvSentinel = "EPHEMERAL_REDIS_SENTINEL"
)

// Client returns a client of the server named by EPHEMERAL_REDIS_ADDR, closed when the test
// ends, or skips the test.
func Client(t testing.TB) *redis.Client {
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		t.Skipf("set %s to run against a real Redis server", EnvAddr)
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// Cluster returns a client of the cluster named by EPHEMERAL_REDIS_CLUSTER, closed when the
// test ends, or skips the test.
func Cluster(t testing.TB) *redis.ClusterClient {
	addrs := os.Getenv(EnvCluster)
	if addrs == "" {
		t.Skipf("set %s to run against a Redis Cluster", EnvCluster)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
	t.Cleanup(func() { c.Close() })
	return c
}

// Sentinel returns a failover client of the master named by EPHEMERAL_REDIS_SENTINEL, closed
// when the test ends, or skips the test.
func Sentinel(t testing.TB) *redis.Client {
	v := os.Getenv(EnvSentinel)
	if v == "" {
		t.Skipf("set %s=<master>@<sentinel addr>[,...] to run against a Sentinel-managed Redis", EnvSentinel)
	}
	name, addrs, ok := strings.Cut(v, "@")
	if !ok || name == "" || addrs == "" {
		t.Fatalf("%s=%q: want <master>@<sentinel addr>[,<addr>...]", EnvSentinel, v)
	}
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: name, SentinelAddrs: strings.Split(addrs, ",")})
	t.Cleanup(func() { c.Close() })
	return c
}

// Prefix returns a key prefix that no other run has: name, a dash and a fresh epoch.
func Prefix(name string) string { return name + "-" + backend.NewEpoch(time.Now()) }

// EachMaster calls fn with the client of each master of a cluster (concurrently), or with
// client itself.
func EachMaster(ctx context.Context, client redis.UniversalClient, fn func(context.Context, *redis.Client) error) error {
	switch c := client.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	default:
		return fmt.Errorf("redistest: unsupported client %T", client)
	}
}

// Keys returns the keys that start with prefix+":", from every master of a cluster.
func Keys(ctx context.Context, client redis.UniversalClient, prefix string) ([]string, error) {
	var mu sync.Mutex
	var keys []string
	err := EachMaster(ctx, client, func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	})
	return keys, err
}

// DeleteKeys removes the keys that start with prefix+":" and returns how many there were.
func DeleteKeys(ctx context.Context, client redis.UniversalClient, prefix string) (int, error) {
	keys, err := Keys(ctx, client, prefix)
	for _, k := range keys {
		err = errors.Join(err, client.Del(ctx, k).Err())
	}
	return len(keys), err
}
