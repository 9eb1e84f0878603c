package redisstore

import (
	"context"
	"crypto/sha1"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed lua/*.lua
var luaFiles embed.FS

// The scripts, one per operation, each made of the prelude and its files: check.lua, the
// checks of what a script reads, comes first in each. The writes have a script of their own,
// without lib.lua: it is the hot path; so have the reads of new subscriptions (open.lua,
// read.lua's position without events). They run as the functions of one library (see
// scripter).
var (
	writeScript = newScript("write", "", "write.lua")
	getScript   = newScript("get", "no-writes", "get.lua")
	readScript  = newScript("read", "allow-oom", "lib.lua", "read.lua")
	openScript  = newScript("open", "allow-oom", "open.lua")
	tickScript  = newScript("tick", "allow-oom", "lib.lua", "tick.lua")

	allScripts = []*script{writeScript, getScript, readScript, openScript, tickScript}

	// library is the source of the Redis function library of the scripts, libraryName its
	// name: a hash of its code, so that the libraries of other versions of this package can
	// sit beside it on the same server. makeLibrary sets each script's function name
	// (script.fn).
	libraryName, library = makeLibrary(allScripts...)
)

// shared is the file in front of every script: the functions that check what a script reads.
const shared = "check.lua"

// script is one of the scripts: its source, and its names as a function of library and in
// the server's script cache (its EVALSHA hash).
type script struct {
	name  string   // "write", …: the function is fn, "<library>_<name>"
	flags string   // the function's flags, space-separated (see the package doc, "Functions")
	files []string // in lua/, after shared
	src   string   // shared and files, for EVAL
	sha   string   // src's SHA1, in hexadecimal, for EVALSHA
	fn    string
}

func newScript(name, flags string, files ...string) *script {
	src := source(append([]string{shared}, files...)...)
	sum := sha1.Sum([]byte(src))
	return &script{name: name, flags: flags, files: files, src: src, sha: hex.EncodeToString(sum[:])}
}

// makeLibrary returns the name and the source of the library of scripts, and sets their fn.
// The library defines shared's functions once, when it loads, and each script's files are the
// body of a function of its own, whose parameters are named KEYS and ARGV: it runs as it would
// with EVALSHA, without making shared's functions anew at every call.
func makeLibrary(scripts ...*script) (name, src string) {
	var body strings.Builder
	body.WriteString(source(shared))
	for _, s := range scripts {
		fmt.Fprintf(&body, "redis.register_function{function_name = LIBRARY .. '_%s', flags = {%s}, callback = function(KEYS, ARGV)\n%s\nend}\n",
			s.name, luaFlags(s.flags), source(s.files...))
	}
	sum := sha1.Sum([]byte(body.String()))
	name = "ephemeral_" + hex.EncodeToString(sum[:6])
	for _, s := range scripts {
		s.fn = name + "_" + s.name
	}
	return name, fmt.Sprintf("#!lua name=%s\nlocal LIBRARY = %q\n%s", name, name, body.String())
}

// luaFlags returns flags, a space-separated list, as the items of a Lua table.
func luaFlags(flags string) string {
	var q []string
	for _, f := range strings.Fields(flags) {
		q = append(q, fmt.Sprintf("%q", f))
	}
	return strings.Join(q, ", ")
}

// source returns the files of lua/ named, in order, after the prelude of the constants they use.
func source(names ...string) string {
	var b strings.Builder
	for _, name := range names {
		src, err := luaFiles.ReadFile("lua/" + name)
		if err != nil {
			panic(err)
		}
		b.Write(src)
	}
	return prelude(b.String()) + b.String()
}

// scripter runs the scripts on a client. It calls them as the functions of library (FCALL),
// and loads the library (FUNCTION LOAD, on every master of a cluster) when a server says it
// has no such function: a function runs in an interpreter of its own, whose cost per call does
// not grow with the server's script cache (see the package doc). Where the server has no
// functions (before Redis 7), or the client's ACL user may not call FCALL, or the library does
// not load, it runs them with EVALSHA from then on, and with EVAL, which caches the script, on
// NOSCRIPT.
type scripter struct {
	client   redis.UniversalClient
	evalOnly atomic.Bool  // FCALL is out: every call is EVALSHA
	loadedAt atomic.Int64 // when the library was last loaded, or tried (UnixNano; see loadEvery)
}

// loadEvery is the least time between two loads of the library by a backend. Until the next,
// a call that finds no function runs with EVALSHA: a server that has no library and that a
// load does not reach (a cluster's node importing a slot, which serves it through ASK
// redirections before the client's slot map names it), or that refuses it for now (out of
// memory, say), would otherwise take a load of some 50 KB to every master at every call.
const loadEvery = time.Second

func newScripter(c redis.UniversalClient) *scripter { return &scripter{client: c} }

// scriptCmd returns the command that runs s on keys with argc arguments, and its arguments as
// args to set: the script's ARGV, in the command's own slice. Its first two arguments are set
// by run.
func scriptCmd(keys []string, argc int) ([]any, args) {
	cmd := make([]any, 3+len(keys)+argc)
	cmd[2] = len(keys)
	for i, k := range keys {
		cmd[3+i] = k
	}
	return cmd, args(cmd[3+len(keys):])
}

// run runs s with cmd, a command of scriptCmd, as the command that mk makes of ctx and its
// arguments, and returns that command, done. A call is sent again only when the server refused
// it before it ran (no such function or script, or no FCALL), and go-redis does not send a
// write again after a failure (see onceIntsCmd), so a write never runs twice.
func (sc *scripter) run(ctx context.Context, s *script, cmd []any, mk func(context.Context, []any) redis.Cmder) redis.Cmder {
	if !sc.evalOnly.Load() {
		if c := sc.fcall(ctx, s, cmd, mk); c != nil {
			return c
		}
	}
	cmd[0], cmd[1] = "evalsha", s.sha
	c := sc.process(ctx, mk(ctx, cmd))
	if c.Err() != nil && redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
		cmd[0], cmd[1] = "eval", s.src
		c = sc.process(ctx, mk(ctx, cmd))
	}
	return c
}

// fcall is run with FCALL. It returns nil when the call is to go with EVALSHA: when the server
// refuses FCALL or the library (and then every call after it does), or has no function of
// the name even after a load (a master that joined since, or one that the load could not
// reach; then only this call does).
func (sc *scripter) fcall(ctx context.Context, s *script, cmd []any, mk func(context.Context, []any) redis.Cmder) redis.Cmder {
	cmd[0], cmd[1] = "fcall", s.fn
	c := sc.process(ctx, mk(ctx, cmd))
	if c.Err() == nil {
		return c // the usual case: no error to look into (which allocates)
	}
	if functionMissing(c.Err()) {
		if !sc.mayLoad(time.Now()) {
			return nil // loaded a moment ago, and missing still: see loadEvery
		}
		var re redis.Error
		if err := sc.load(ctx); errors.As(err, &re) { // refused, not a lost connection
			if !refusedForNow(err) {
				sc.evalOnly.Store(true)
			}
			return nil
		}
		// Loaded, or not everywhere (a master of a cluster out of reach, say): this call's
		// server may have it now.
		c = sc.process(ctx, mk(ctx, cmd))
		if functionMissing(c.Err()) {
			return nil
		}
	}
	if fcallRefused(c.Err()) {
		sc.evalOnly.Store(true)
		return nil
	}
	return c
}

// mayLoad reports whether a call that finds no function at now loads the library, as the
// first to do so since loadEvery.
func (sc *scripter) mayLoad(now time.Time) bool {
	last := sc.loadedAt.Load()
	return now.UnixNano()-last >= int64(loadEvery) && sc.loadedAt.CompareAndSwap(last, now.UnixNano())
}

// refusedForNow reports whether err is a server's refusal of a command before it ran anything,
// one it may not give a moment later: out of memory, loading its data, a replica or a master
// that lost its own, too few replicas, a slot on the move or the cluster down, a script
// running. A load of the library so refused is tried again (see loadEvery); one refused
// otherwise (the ACL, a server without functions) puts FCALL out for good. A write so refused
// may be sent again (see onceIntsCmd.NoRetry). A lost connection is no refusal: the command
// may have run.
func refusedForNow(err error) bool {
	for _, p := range []string{"OOM", "LOADING", "READONLY", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN", "CLUSTERDOWN", "BUSY"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

func (sc *scripter) process(ctx context.Context, c redis.Cmder) redis.Cmder {
	_ = sc.client.Process(ctx, c)
	return c
}

// runCmd is run for a reply that redis.Cmd reads.
func (sc *scripter) runCmd(ctx context.Context, s *script, cmd []any) *redis.Cmd {
	return sc.run(ctx, s, cmd, newScriptCmd).(*redis.Cmd)
}

// pipeline runs s once with each command of cmds (of scriptCmd) in one pipeline, as the
// commands that mk makes, and returns them, done, in order: a single command as run sends it.
// The calls that the server refused before they ran (see notRun: it lost the scripts or the
// library, say) go again: the first alone, with run, which loads what the server lacks, then
// the others in one more pipeline, and those that this refuses too alone. A cluster client
// splits a pipeline by node.
func (sc *scripter) pipeline(ctx context.Context, s *script, cmds [][]any, mk func(context.Context, []any) redis.Cmder) []redis.Cmder {
	if len(cmds) == 1 {
		return []redis.Cmder{sc.run(ctx, s, cmds[0], mk)}
	}
	out := sc.send(ctx, s, cmds, mk)
	var again []int
	for i, c := range out {
		if notRun(c.Err()) {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return out
	}
	out[again[0]] = sc.run(ctx, s, cmds[again[0]], mk)
	rest := again[1:]
	sub := make([][]any, len(rest))
	for j, i := range rest {
		sub[j] = cmds[i]
	}
	for j, c := range sc.send(ctx, s, sub, mk) {
		out[rest[j]] = c
	}
	for _, i := range rest {
		if notRun(out[i].Err()) {
			out[i] = sc.run(ctx, s, cmds[i], mk)
		}
	}
	return out
}

// send runs s once with each command of cmds in one pipeline, as run sends a call first: FCALL,
// or EVALSHA once FCALL is out.
func (sc *scripter) send(ctx context.Context, s *script, cmds [][]any, mk func(context.Context, []any) redis.Cmder) []redis.Cmder {
	out := make([]redis.Cmder, len(cmds))
	_, _ = sc.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, cmd := range cmds {
			if sc.evalOnly.Load() {
				cmd[0], cmd[1] = "evalsha", s.sha
			} else {
				cmd[0], cmd[1] = "fcall", s.fn
			}
			out[i] = mk(ctx, cmd)
			_ = p.Process(ctx, out[i])
		}
		return nil
	})
	return out
}

// pipelineCalls runs s for each call of batch in one pipeline (see pipeline), with the command
// cmdOf makes of its request, as mk makes it, and completes each call with finish of its
// command, done. The pipeline is abandoned only when every caller of the batch has stopped
// waiting (see batchContext).
func pipelineCalls[Req, Res any](sc *scripter, s *script, batch []*call[Req, Res], cmdOf func(Req) []any,
	mk func(context.Context, []any) redis.Cmder, finish func(c *call[Req, Res], cmd redis.Cmder)) {
	ctx, done := batchContext(batch)
	defer done()
	cmds := make([][]any, len(batch))
	for i, c := range batch {
		cmds[i] = cmdOf(c.req)
	}
	for i, cmd := range sc.pipeline(ctx, s, cmds, mk) {
		finish(batch[i], cmd)
		close(batch[i].done)
	}
}

// notRun reports whether err is a server's refusal of a call of cmd before it ran anything.
func notRun(err error) bool {
	return err != nil && (redis.HasErrorPrefix(err, "NOSCRIPT") || functionMissing(err) || fcallRefused(err))
}

// newScriptCmd returns a redis.Cmd of the arguments of a script's call, routed by its first
// key in a cluster.
func newScriptCmd(ctx context.Context, cmd []any) redis.Cmder {
	c := redis.NewCmd(ctx, cmd...)
	c.SetFirstKeyPos(3)
	return c
}

// load loads library on the server, or on every master of a cluster. A library of the same
// name that is already there holds the same code.
func (sc *scripter) load(ctx context.Context) error {
	load := func(ctx context.Context, c redis.Cmdable) error {
		err := c.FunctionLoad(ctx, library).Err()
		if err != nil && strings.Contains(err.Error(), "already exists") {
			return nil
		}
		return err
	}
	each := func(ctx context.Context, c *redis.Client) error { return load(ctx, c) }
	switch c := sc.client.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, each)
	default:
		return load(ctx, c)
	}
}

// functionMissing reports whether err is a server's reply that it has no function of the
// name called: it has not loaded the library (new, flushed, restarted without persistence).
func functionMissing(err error) bool {
	return redis.HasErrorPrefix(err, "Function not found") // after "ERR "
}

// fcallRefused reports whether err is a server's refusal of FCALL itself, before it ran
// anything: a server without functions (before Redis 7, or an emulation such as miniredis), or
// an ACL user that may not call it. The errors a function raises read otherwise ("ERR The user
// executing the script can't run this command…", "ERR Unknown Redis command called from
// script…").
func fcallRefused(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := strings.ToLower(re.Error())
	return (strings.HasPrefix(msg, "err unknown command") || strings.HasPrefix(msg, "noperm")) &&
		strings.Contains(msg, "fcall")
}
