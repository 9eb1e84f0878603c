package redistest

import (
	"context"
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
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// NewServer returns a server on a free port, not started, or skips the test when there is no
// redis-server.
func NewServer(t testing.TB) *Server {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not found in PATH; install it (Debian: redis-server) to run the tests that start servers of their own")
	}
	return &Server{t: t, bin: bin, Port: FreePort(t), Dir: t.TempDir()}
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// Addr returns the server's address.
func (s *Server) Addr() string { return "127.0.0.1:" + s.Port }

// Start starts the server and waits until it answers PING.
func (s *Server) Start() {
	s.t.Helper()
	var args []string
	if s.Conf != "" {
		args = append(args, s.Conf)
	}
	args = append(args, "--port", s.Port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.Dir, "--daemonize", "no", "--loglevel", "warning")
	s.cmd = exec.Command(s.bin, append(args, s.Args...)...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
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
			s.t.Fatalf("redis-server on port %s exited at start", s.Port)
		case <-ctx.Done():
			s.t.Fatalf("redis-server on port %s does not answer", s.Port)
		}
	}
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
