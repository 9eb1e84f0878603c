package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server that a test starts, stops and restarts itself, on a free loopback
// port, without persistence.
type Server struct {
	Port string
	Dir  string   // its working directory, the test's own
	Conf string   // a config file to start with (a Sentinel's), or ""
	Args []string // more arguments, after the common ones

	t    testing.TB
	bin  string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartServer starts a redis-server with the extra arguments args, or skips the test when
// there is none. It is stopped when the test ends.
func StartServer(t testing.TB, args ...string) *Server {
	s := NewServer(t)
	s.Args = args
	t.Cleanup(s.Stop)
	for try := 1; ; try++ {
		err := s.start()
		if err == nil {
			return s
		}
		if !errors.Is(err, errExited) || try == 3 {
			t.Fatal(err)
		}
		s.Port = FreePort(t) // taken between FreePort and the bind, most likely: another
	}
}

// errExited is the error of a server that exited before it answered.
var errExited = errors.New("exited at start")

// NewServer returns a server on a free port, not started, or skips the test when there is no
// redis-server.
func NewServer(t testing.TB) *Server {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not found in PATH; install it (Debian: redis-server) to run the tests that start servers of their own")
	}
	return &Server{t: t, bin: bin, Port: FreePort(t), Dir: t.TempDir()}
}

// FreePort returns a loopback port that was free a moment ago. It is drawn at random below
// the kernel's ephemeral range (32768 and up on Linux), as .ci/run draws its servers' ports:
// a port the kernel handed out for ":0" may be handed to an outgoing connection of another
// test before the server binds it, and the servers of tests running in parallel then fail
// to start ("exited at start").
func FreePort(t testing.TB) string {
	for range 1000 {
		p := strconv.Itoa(10000 + rand.IntN(12000))
		if l, err := net.Listen("tcp", "127.0.0.1:"+p); err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free loopback port in 10000-21999")
	return ""
}

// Addr returns the server's address.
func (s *Server) Addr() string { return "127.0.0.1:" + s.Port }

// Start starts the server and waits until it answers PING.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

// start is Start, returning its error.
func (s *Server) start() error {
	var args []string
	if s.Conf != "" {
		args = append(args, s.Conf)
	}
	args = append(args, "--port", s.Port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.Dir, "--daemonize", "no", "--loglevel", "warning")
	s.cmd = exec.Command(s.bin, append(args, s.Args...)...)
	var out bytes.Buffer // what it says, at loglevel warning: why it exited, if it did
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	s.cmd.WaitDelay = time.Second // should a child of it hold the output open after it exited
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		return fmt.Errorf("start redis-server: %w", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.done)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for c.Ping(ctx).Err() != nil {
		select {
		case <-tick.C:
		case <-s.done:
			s.cmd = nil
			// Read once cmd.Wait returned, which waits for the output's copy.
			return fmt.Errorf("redis-server on port %s: %w: %s", s.Port, errExited, bytes.TrimSpace(out.Bytes()))
		case <-ctx.Done():
			return fmt.Errorf("redis-server on port %s does not answer", s.Port)
		}
	}
	return nil
}

// Stop kills the server, losing its data, and waits for it to exit. It is idempotent.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart kills the server and starts a new one on the same port: all data is lost.
func (s *Server) Restart() {
	s.Stop()
	s.Start()
}
