//go:build unix

package redisstore

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"
)

var scriptBase = flag.String("script.base", "", "BenchmarkWriteScript's baseline: a write.lua of another version, say from git show REV:runtime/redisstore/lua/write.lua (default: testdata/bare_write.lua)")

// BenchmarkWriteScript measures write.lua on the server alone, without the round trip and the
// client: one EVAL calls it and a baseline alternately, b.N times each, on the same tenant
// (past MaxEvents, as the write benchmarks' are), and reports each one's time per call from
// the server's TIME. The baseline is a bare function of the commands that a write needs
// (testdata/bare_write.lua), which tells what the script's Lua costs beyond them; with
// -script.base FILE it is another version of write.lua that takes the same arguments (the
// same WRITE_HEAD_ARGS and WRITE_ARGS_PER_OP), which tells what a change to it saves.
// Alternating in one EVAL resolves a few percent, where the round trips of the other
// benchmarks vary by a fifth on a shared machine. But it runs the same keys and arguments at
// every call, its strings interned and its data in the caches: a cut it measures may not show
// in BenchmarkUpsert, where each call writes other keys (one that took a fifth off here took
// nothing off there: docs/PERFORMANCE.md, 2026-12-08). The EVAL holds the server for b.N calls
// of each: run it against a server of your own.
//
//	git show HEAD~1:runtime/redisstore/lua/write.lua > /tmp/write-old.lua
//	EPHEMERAL_REDIS_ADDR=127.0.0.1:26379 go test -run '^$' -bench WriteScript -benchtime 2000x ./runtime/redisstore -script.base /tmp/write-old.lua
//
// Metrics: script-µs/call and base-µs/call, and their ratio, script/base.
func BenchmarkWriteScript(b *testing.B) {
	f := newBenchReal(b)
	path := "testdata/bare_write.lua"
	if *scriptBase != "" {
		path = *scriptBase
	}
	base, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	write, err := luaFiles.ReadFile("lua/write.lua")
	if err != nil {
		b.Fatal(err)
	}
	check, err := luaFiles.ReadFile("lua/check.lua")
	if err != nil {
		b.Fatal(err)
	}
	src := pairScript(string(check), string(write), string(base))
	for _, c := range []struct {
		code string
		ops  int
	}{{opUpsert, 1}, {opTouch, 1}, {opUpsert, 16}, {opTouch, 16}} {
		name := map[string]string{opUpsert: "upsert", opTouch: "touch"}[c.code]
		b.Run(fmt.Sprintf("%s/ops=%d", name, c.ops), func(b *testing.B) {
			ctx := context.Background()
			st, ten := f.open(b, benchLimits), "script-"+name
			ops := make([]writeOp, c.ops)
			for i := range ops {
				ops[i] = writeOp{code: opUpsert, key: fmt.Sprintf("user-%05d", i), value: benchValue, ttl: time.Minute}
			}
			var epoch string
			for range benchLimits.MaxEvents/c.ops + 1 { // past MaxEvents: every write trims
				res, err := runWrite(ctx, st.b.scripts, st.keys(ten), "", st.limits, ops)
				if err != nil {
					b.Fatal(err)
				}
				epoch = res[0].epoch
			}
			for i := range ops {
				ops[i].code = c.code
			}
			_, a := writeCmd(st.keys(ten), epoch, st.b.watcherID, st.limits, ops) // as a store sends it
			b.ResetTimer()
			res, err := f.client.Eval(ctx, src, st.keys(ten), append([]any{b.N}, a...)...).Int64Slice()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(res[0])/1e3/float64(b.N), "script-µs/call")
			b.ReportMetric(float64(res[1])/1e3/float64(b.N), "base-µs/call")
			b.ReportMetric(float64(res[0])/float64(res[1]), "script/base")
		})
	}
}

// pairScript returns an EVAL script that calls the scripts write and base, each the body of a
// function of KEYS and ARGV as write.lua is, alternately ARGV[1] times each (which it takes out
// of ARGV), and returns the nanoseconds each took in all, by the server's TIME; or the first
// error either returns.
func pairScript(check, write, base string) string {
	fn := func(body string) string { return "function(KEYS, ARGV)\n" + body + "\nend\n" }
	return prelude(check+write+base) + check +
		"local write = " + fn(write) +
		"local base = " + fn(base) + `
local n = tonumber(table.remove(ARGV, 1))
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1e6 + tonumber(t[2])
end
local ta, tb = 0, 0
for i = 1, n do
  local first, second = write, base
  if i % 2 == 0 then
    first, second = base, write
  end
  local t0 = clock()
  local r1 = first(KEYS, ARGV)
  local t1 = clock()
  local r2 = second(KEYS, ARGV)
  local t2 = clock()
  if r1.err or r2.err then
    return r1.err and r1 or r2
  end
  if i % 2 == 0 then
    ta, tb = ta + t2 - t1, tb + t1 - t0
  else
    ta, tb = ta + t1 - t0, tb + t2 - t1
  end
end
return {ta * 1000, tb * 1000}
`
}
