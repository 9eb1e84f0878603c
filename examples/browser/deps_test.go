package main

import (
	"strings"
	"testing"
)

// wasmPackages are the packages that run in a browser: the API, the runtime beneath it without
// Redis, and the examples built for WebAssembly.
var wasmPackages = []string{
	"github.com/ephemeral-go/ephemeral",
	"github.com/ephemeral-go/ephemeral/runtime/backend",
	"github.com/ephemeral-go/ephemeral/runtime/memstore",
	"github.com/ephemeral-go/ephemeral/runtime/jsonc",
	"github.com/ephemeral-go/ephemeral/examples/quickstart",
	pkg,
}

// TestNoRedisInWasm checks that no Redis package reaches the WebAssembly builds of the
// packages that run in a browser. It asks the go command what those builds import, so it
// holds without build tags: the packages do not import Redis code at all.
func TestNoRedisInWasm(t *testing.T) {
	for _, goos := range []string{"js", "wasip1"} {
		out, err := goCmd([]string{"GOOS=" + goos, "GOARCH=wasm"}, append([]string{"list", "-deps"}, wasmPackages...)...)
		if err != nil {
			t.Fatal(err)
		}
		deps := strings.Fields(out)
		for _, p := range deps {
			if strings.HasPrefix(p, "github.com/redis/") || strings.HasPrefix(p, "github.com/alicebob/miniredis") {
				t.Errorf("GOOS=%s GOARCH=wasm: %s is in the build", goos, p)
			}
		}
		if len(deps) < len(wasmPackages) {
			t.Errorf("GOOS=%s GOARCH=wasm go list -deps listed %d packages: %q", goos, len(deps), deps)
		}
	}
}
