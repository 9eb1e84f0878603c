//go:build !js

package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestSlowBody checks that the server bounds the time a request's body may take: a client
// that sends one slowly, or not at all, gets its answer and loses its connection instead of
// holding it. (net/http reads what a handler left of a body before it answers.)
func TestSlowBody(t *testing.T) {
	srv := newServer(http.FileServerFS(static))
	if srv.ReadTimeout <= 0 {
		t.Fatalf("ReadTimeout %v: a request's body may take for ever", srv.ReadTimeout)
	}
	srv.ReadTimeout = min(srv.ReadTimeout, 300*time.Millisecond) // the test's, to be quick
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /static/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx")
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer while the body stalls: %v", err)
	}
	resp.Body.Close()
	if !resp.Close {
		t.Errorf("the connection is kept, with the rest of the body unread")
	}
}
