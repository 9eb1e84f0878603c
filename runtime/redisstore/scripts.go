package redisstore

import (
	"embed"

	"github.com/redis/go-redis/v9"
)

//go:embed lua/*.lua
var luaFiles embed.FS

// The scripts, one per operation, each made of the prelude, lua/lib.lua and its own file.
// Script.Run calls EVALSHA and falls back to EVAL (which loads the script) on NOSCRIPT.
var (
	upsertScript = newScript("upsert.lua")
	touchScript  = newScript("touch.lua")
	removeScript = newScript("remove.lua")
	getScript    = newScript("get.lua")
	readScript   = newScript("read.lua")
	tickScript   = newScript("tick.lua")
)

func newScript(name string) *redis.Script {
	lib, err := luaFiles.ReadFile("lua/lib.lua")
	if err != nil {
		panic(err)
	}
	body, err := luaFiles.ReadFile("lua/" + name)
	if err != nil {
		panic(err)
	}
	return redis.NewScript(prelude() + string(lib) + string(body))
}
