// Browser is ephemeral in a browser tab: a to-do list whose entries expire, kept by a Go
// program compiled to WebAssembly, on the in-memory backend. Run it with
//
//	go run ./examples/browser                      # http://127.0.0.1:8081/
//	go run ./examples/browser -addr 127.0.0.1:9000
//
// and open the page; add ?ttl=5s to its address for entries that live 5 seconds instead of 30.
//
// The command builds the page's program when it starts (GOOS=js GOARCH=wasm go build of this
// package, with the go command on PATH; run it inside the module), then serves the page, the
// program and the Go distribution's wasm_exec.js, which loads it. The server keeps no state:
// everything runs in the tab.
//
// There the program (app.go) keeps a [TodoStore], generated from todo.go by go generate, on
// memstore, and a [ephemeral.Mirror] of it. Every change the mirror reports re-renders the list
// and is logged below it, with syscall/js. Add puts an entry, Keep touches it (its TTL starts
// over), Done removes it, and an entry nobody keeps expires: the memory backend's timer fires in
// the tab, and the mirror reports the expire event.
//
// [ephemeral.Mirror]: https://pkg.go.dev/github.com/ephemeral-go/ephemeral#Mirror
package main
