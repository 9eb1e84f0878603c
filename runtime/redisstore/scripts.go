package redisstore

import (
	"embed"
	"strings"

	"github.com/redis/go-redis/v9"
)

//go:embed lua/*.lua
var luaFiles embed.FS

// The scripts, one per operation, each made of the prelude and its files: check.lua, the
// checks of what a script reads, comes first in each. Script.Run (and
// evalInts) calls EVALSHA and falls back to EVAL, which loads the script, on NOSCRIPT. The
// writes have a script of their own, without lib.lua: it is the hot path; so have the reads
// of new subscriptions (open.lua, read.lua's position without events).
var (
	writeSource = source("check.lua", "write.lua")
	writeScript = redis.NewScript(writeSource)
	getScript   = redis.NewScript(source("check.lua", "get.lua"))
	readScript  = redis.NewScript(source("check.lua", "lib.lua", "read.lua"))
	openScript  = redis.NewScript(source("check.lua", "open.lua"))
	tickScript  = redis.NewScript(source("check.lua", "lib.lua", "tick.lua"))
)

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
