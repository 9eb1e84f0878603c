package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
	"github.com/ephemeral-go/ephemeral/runtime/redisstore"
	"github.com/redis/go-redis/v9"
)

// target is the backend under test, and on Redis the client to reach around it.
type target struct {
	name    string
	backend ephemeral.Backend
	client  *redis.Client // nil on memory
	addr    string        // the Redis server's address
	prefix  string        // the run's key prefix on Redis
	conn    string        // the client name of the run's connections on Redis
	// scripts is the number of scripts in the server's script cache when the run started
	// (INFO memory's number_of_cached_scripts; 0 when unknown): see manyScripts.
	scripts int
	// functions says that the server has Redis functions (Redis 7 or later), which the store
	// runs its scripts as.
	functions bool
}

// manyScripts is the size of a server's script cache from which the load test warns, on a
// server without functions, that its Redis rows measure the cache too. Every EVALSHA pays for
// the cache's size (where inside the server was not traced): on Redis 7.0.15 here, an EVALSHA
// of 'return 1' took 0.5–0.6 µs of server time with 7 scripts cached, 1.0 µs with 2,000 and 3.4 µs
// with 10,000, and the store's write script, 16 against 44 µs per call with 20,000
// (docs/PERFORMANCE.md). The store's functions do not (see the redisstore package doc).
const manyScripts = 1000

// openMemory returns a target on a new memstore backend.
func openMemory() *target {
	return &target{name: "memory", backend: memstore.New()}
}

// openRedis returns a target on the Redis server at addr, with a key prefix and a client name
// of its own, and a connection pool of poolSize.
func openRedis(ctx context.Context, addr string, poolSize int) (*target, error) {
	id := strings.ToLower(rand.Text())
	t := &target{addr: addr, prefix: "loadtest-" + id, conn: "ephemeral-loadtest-" + id}
	t.client = redis.NewClient(&redis.Options{Addr: addr, ClientName: t.conn, PoolSize: poolSize})
	if err := t.client.Ping(ctx).Err(); err != nil {
		t.client.Close()
		return nil, fmt.Errorf("redis at %s: %w", addr, err)
	}
	t.name = "redis " + addr
	if v := infoField(t.client.Info(ctx, "server").Val(), "redis_version"); v != "" {
		t.name += " (Redis " + v + ")"
		major, _, _ := strings.Cut(v, ".")
		n, _ := strconv.Atoi(major)
		t.functions = n >= 7
	}
	if n, err := strconv.Atoi(infoField(t.client.Info(ctx, "memory").Val(), "number_of_cached_scripts")); err == nil {
		t.name += fmt.Sprintf(", %d cached scripts", n)
		t.scripts = n
	}
	t.backend = redisstore.New(t.client, redisstore.WithKeyPrefix(t.prefix))
	return t, nil
}

// apart returns a backend on a Redis client of its own, of the run's key prefix and client
// name, as another process of the run would have, and the function that closes both.
func (t *target) apart() (ephemeral.Backend, func()) {
	c := redis.NewClient(&redis.Options{Addr: t.addr, ClientName: t.conn})
	b := redisstore.New(c, redisstore.WithKeyPrefix(t.prefix))
	return b, func() { b.Close(); c.Close() }
}

// close closes the backend and, on Redis, deletes every key of the run and closes the client.
func (t *target) close(ctx context.Context) error {
	err := t.backend.Close()
	if t.client == nil {
		return err
	}
	return errors.Join(err, t.deleteKeys(ctx), t.client.Close())
}

// deleteKeys unlinks the keys of the run's prefix.
func (t *target) deleteKeys(ctx context.Context) error {
	iter := t.client.Scan(ctx, 0, t.prefix+":*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := t.client.Unlink(ctx, batch...).Err(); err != nil {
				return fmt.Errorf("delete keys: %w", err)
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("scan keys: %w", err)
	}
	if len(batch) > 0 {
		if err := t.client.Unlink(ctx, batch...).Err(); err != nil {
			return fmt.Errorf("delete keys: %w", err)
		}
	}
	return nil
}

// stateKey returns the Redis hash that holds the entries of tenant (see the redisstore package
// doc); tenant must not need escaping.
func (t *target) stateKey(tenant string) string {
	return t.prefix + ":{loadtest:" + tenant + "}:state"
}

// cmdStats is a reading of commands' lines of INFO commandstats.
type cmdStats struct{ calls, usec float64 }

// commandStats reads the calls and microseconds of cmds, summed, from INFO commandstats. It
// returns ok=false on memory and on servers without the section (such as miniredis).
func (t *target) commandStats(ctx context.Context, cmds ...string) (s cmdStats, ok bool) {
	if t.client == nil {
		return s, false
	}
	info, err := t.client.Info(ctx, "commandstats").Result()
	if err != nil || !strings.Contains(info, "cmdstat_") {
		return s, false
	}
	for _, cmd := range cmds {
		line := infoField(info, "cmdstat_"+cmd) // "" for a command not called yet
		for field := range strings.SplitSeq(line, ",") {
			name, value, _ := strings.Cut(field, "=")
			v, _ := strconv.ParseFloat(value, 64)
			switch name {
			case "calls":
				s.calls += v
			case "usec":
				s.usec += v
			}
		}
	}
	return s, true
}

// serverCPU reads the CPU time the server has used (used_cpu_user + used_cpu_sys of INFO cpu):
// unlike commandstats, it counts a script's commands once, and the server's own work around
// each command. It returns ok=false on memory and on servers without the section.
func (t *target) serverCPU(ctx context.Context) (cpu time.Duration, ok bool) {
	if t.client == nil {
		return 0, false
	}
	info, err := t.client.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, false
	}
	user, err1 := strconv.ParseFloat(infoField(info, "used_cpu_user"), 64)
	sys, err2 := strconv.ParseFloat(infoField(info, "used_cpu_sys"), 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration((user + sys) * float64(time.Second)), true
}

// connStats counts the run's connections in CLIENT LIST.
type connStats struct {
	total   int // all of the run's connections
	xread   int // those whose last command was XREAD: the readers' blocking reads
	blocked int // those blocked in a command right now (flag b)
	// blocking counts those whose last command was a blocking read or a subscription (see
	// blockingCommands), or that are in subscribed mode (flag P): the connections that
	// readers hold, whether blocked at the moment or not.
	blocking int
}

// blockingCommands are the commands, as CLIENT LIST names them, that block a connection or
// put it in subscribed mode.
var blockingCommands = []string{
	"xread", "xreadgroup", "blpop", "brpop", "blmove", "brpoplpush", "blmpop", "bzpopmin",
	"bzpopmax", "bzmpop", "wait", "subscribe", "ssubscribe", "psubscribe", "unsubscribe",
	"sunsubscribe", "punsubscribe",
}

// connections reads the connections named name (the run's: t.conn) from CLIENT LIST. ok is
// false on memory and on servers without CLIENT LIST (such as miniredis).
func (t *target) connections(ctx context.Context, name string) (s connStats, ok bool) {
	if t.client == nil {
		return s, false
	}
	list, err := t.client.ClientList(ctx).Result()
	if err != nil {
		return s, false
	}
	return countConns(list, name), true
}

// countConns counts the connections named name in the reply of CLIENT LIST.
func countConns(list, name string) (s connStats) {
	for line := range strings.Lines(list) {
		fields := strings.Fields(line)
		if !slices.Contains(fields, "name="+name) {
			continue
		}
		s.total++
		blocking := false
		for _, f := range fields {
			if cmd, ok := strings.CutPrefix(f, "cmd="); ok {
				if cmd == "xread" {
					s.xread++
				}
				blocking = blocking || slices.Contains(blockingCommands, cmd)
			}
			if flags, ok := strings.CutPrefix(f, "flags="); ok {
				if strings.Contains(flags, "b") {
					s.blocked++
				}
				blocking = blocking || strings.Contains(flags, "P")
			}
		}
		if blocking {
			s.blocking++
		}
	}
	return s
}

// infoField returns the value of name in an INFO reply ("name:value" lines).
func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}
