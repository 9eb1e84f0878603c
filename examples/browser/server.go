//go:build !js

package main

import (
	"bytes"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// pkg is the import path of this package, whose js/wasm build is the page's program.
const pkg = "github.com/ephemeral-go/ephemeral/examples/browser"

//go:embed static
var static embed.FS

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "serve the page on this `address`")
	flag.Parse()
	log.SetFlags(0)
	log.Print("building the page's program (GOOS=js GOARCH=wasm go build)")
	h, err := newHandler()
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving http://%s/", ln.Addr())
	log.Fatal(newServer(h).Serve(ln))
}

// newServer returns the HTTP server of h, with timeouts so that a client that sends slowly or
// not at all cannot hold a connection open: its request, body included, must arrive within
// 10 s (the handlers read no body, but net/http reads up to 256 KB of one before it answers,
// and would wait for it for ever), and the answer may take 2 minutes (the page's program is
// a few MB: its write may take a while on a slow link).
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       time.Minute,
	}
}

// newHandler builds the page's program and returns the handler that serves it, the page and
// wasm_exec.js.
func newHandler() (http.Handler, error) {
	app, err := buildApp()
	if err != nil {
		return nil, err
	}
	goroot, err := goCmd(nil, "env", "GOROOT")
	if err != nil {
		return nil, err
	}
	wasmExec, err := os.ReadFile(filepath.Join(strings.TrimSpace(goroot), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		return nil, err
	}
	page, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(page))
	mux.HandleFunc("GET /app.wasm", serveBytes("app.wasm", app))
	mux.HandleFunc("GET /wasm_exec.js", serveBytes("wasm_exec.js", wasmExec))
	return mux, nil
}

// serveBytes serves b with the content type of name's extension.
func serveBytes(name string, b []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
	}
}

// buildApp builds this package for js/wasm and returns the binary.
func buildApp() ([]byte, error) {
	dir, err := os.MkdirTemp("", "ephemeral-browser-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "app.wasm")
	if _, err := goCmd([]string{"GOOS=js", "GOARCH=wasm"}, "build", "-o", out, pkg); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

// goCmd runs the go command with args, adding env to the environment, and returns its
// standard output.
func goCmd(env []string, args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			err = fmt.Errorf("%w\n%s", err, exit.Stderr)
		}
		return "", fmt.Errorf("%s: %w", strings.Join(append(append(slices.Clone(env), "go"), args...), " "), err)
	}
	return string(out), nil
}
