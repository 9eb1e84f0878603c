package reliability

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/redisstore"
	"github.com/redis/go-redis/v9"
)

// A master of a Redis Cluster that dies (killed, its connections refused) is replaced by its
// replica, and the writes of a backend to its slots succeed again once the replica has taken
// over: the backend has the cluster client reload its map of the slots when a call cannot
// reach a node, where go-redis reloads it only on a MOVED reply, which a dead server never
// sends, or every ClusterStateReloadInterval (60 s by default, as the client here has it). A
// reader opened before the failover gets the first write after it, with no overflow: the
// replica had every write. The writes must succeed again within waitFor (30 s): the replica
// takes over within a few cluster-node-timeouts (2 s here), and go-redis left alone would go on
// calling the dead master until its ClusterStateReloadInterval, 60 s, had passed.
func TestMasterDiesCluster(t *testing.T) {
	t.Cleanup(func() { waitRedials(t) }) // the last cleanup: after the clients are closed
	nodes, buses := startClusterNodes(t, 3, "2000")
	replica := redistest.StartServer(t, "--cluster-enabled", "yes", "--cluster-port", redistest.FreePort(t),
		"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
	ctx := t.Context()
	var admin []*redis.Client
	for _, s := range append(nodes[:len(nodes):len(nodes)], replica) {
		c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
		t.Cleanup(func() { c.Close() })
		admin = append(admin, c)
	}
	master, rep := admin[0], admin[len(admin)-1]
	id, err := master.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", nodes[0].Port, buses[0]).Err(); err != nil {
		t.Fatalf("cluster meet: %v", err)
	}
	// The replica knows node 0 once the handshake is done: until then REPLICATE fails.
	retry(t, "the replica's REPLICATE of node 0", func(ctx context.Context) error {
		return rep.Do(ctx, "CLUSTER", "REPLICATE", id).Err()
	})
	waitClusterOK(t, admin)
	retry(t, "the replica's link to node 0", func(ctx context.Context) error {
		info, err := rep.Info(ctx, "replication").Result()
		if err == nil && !strings.Contains(info, "master_link_status:up") {
			err = errors.New("the link is not up")
		}
		return err
	})

	addrs := []string{replica.Addr()}
	for _, n := range nodes {
		addrs = append(addrs, n.Addr())
	}
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	b := redisstore.New(client)
	t.Cleanup(func() {
		b.Close()
		client.Close()
	})
	st := newStore(t, b, "failover", ephemeral.Limits{})
	tenant := ""
	for i := 0; tenant == ""; i++ {
		name := "t" + strconv.Itoa(i)
		slot, err := master.ClusterKeySlot(ctx, "{failover:"+name+"}").Result()
		if err != nil {
			t.Fatal(err)
		}
		if clusterNodeOf(int(slot), len(nodes)) == 0 {
			tenant = name
		}
	}
	in := ephemeral.WithTenant(tenant)
	first, err := st.Upsert(ctx, "k", "before", in)
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.Reader(ctx, in, ephemeral.After(backend.Cursor{Epoch: first.Epoch, Seq: first.Version}.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// WAIT waits for the writes of its own connection: one of the admin's in the tenant's slot,
	// after the store's, which the replica then has too (it applies them in order).
	if err := master.Set(ctx, "{failover:"+tenant+"}:sync", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := master.Do(ctx, "WAIT", 1, 10000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d replicas, %v: the replica lags", n, err)
	}

	nodes[0].Stop()
	died := time.Now()
	var after ephemeral.Entry[string, string]
	retry(t, "the writes after the master died", func(ctx context.Context) (err error) {
		after, err = st.Upsert(ctx, "k", "after", in)
		return err
	})
	t.Logf("writes failed for %v after the master died", time.Since(died).Round(time.Millisecond))
	if after.Epoch != first.Epoch || after.Version != first.Version+1 {
		t.Fatalf("the write after the failover made version %s/%d, want %s/%d", after.Epoch, after.Version, first.Epoch, first.Version+1)
	}
	c, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	ev, err := r.Recv(c)
	if err != nil || ev.Kind != ephemeral.EventUpsert || ev.Version != after.Version || ev.Value != "after" {
		t.Fatalf("the reader got %+v, %v; want the upsert of version %d", ev, err, after.Version)
	}
}

// waitRedials waits until no goroutine of go-redis redials a dead server. A client's pool
// redials one in a goroutine of its own, every second until the pool is closed, and sees the
// close only after its sleep: TestMain's leak check would take it for one of the test's.
func waitRedials(t *testing.T) {
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.Stack(buf, true)
		if !bytes.Contains(buf[:n], []byte("(*ConnPool).tryDial")) {
			return
		}
		if time.Now().After(deadline) {
			t.Error("go-redis still redials a dead server 10 s after the test's clients were closed")
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
