package redisstore

import (
	"testing"

	"github.com/ephemeral-go/ephemeral/runtime/storetest"
)

func (f fixture) harness() storetest.Harness {
	return storetest.Harness{Backend: f.b, Advance: f.advance, RealTime: f.real}
}

func TestStoretestMiniredis(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness { return newMini(t).harness() })
}

func TestStoretestRedis(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness { return newReal(t).harness() })
}

func TestStoretestCluster(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness { return newCluster(t).harness() })
}

// TestStoretestSentinel runs the suite through go-redis's failover client, which asks the
// Sentinels for the master's address.
func TestStoretestSentinel(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness { return newSentinel(t).harness() })
}
