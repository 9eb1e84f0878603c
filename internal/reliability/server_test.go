package reliability

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// server is a redis-server that a test starts, stops and restarts itself, on a free loopback
// port, without persistence.
type server struct {
	t    *testing.T
	bin  string
	port string
	dir  string
	conf string   // a config file to start with (a Sentinel's), or ""
	args []string // more arguments, after the common ones
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// startServer starts a redis-server with the extra arguments args, or skips the test when
// there is none. It is stopped when the test ends.
func startServer(t *testing.T, args ...string) *server {
	s := newServer(t)
	s.args = args
	s.start()
	t.Cleanup(s.stop)
	return s
}

// newServer returns a server on a free port, not started, or skips the test when there is no
// redis-server.
func newServer(t *testing.T) *server {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not found in PATH; install it (Debian: redis-server) to run the fault tests")
	}
	return &server{t: t, bin: bin, port: freePort(t), dir: t.TempDir()}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func (s *server) addr() string { return "127.0.0.1:" + s.port }

// start starts the server and waits until it answers PING.
func (s *server) start() {
	s.t.Helper()
	var args []string
	if s.conf != "" {
		args = append(args, s.conf)
	}
	args = append(args, "--port", s.port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--daemonize", "no", "--loglevel", "warning")
	s.cmd = exec.Command(s.bin, append(args, s.args...)...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.done)
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for c.Ping(ctx).Err() != nil {
		select {
		case <-tick.C:
		case <-s.done:
			s.t.Fatalf("redis-server on port %s exited at start", s.port)
		case <-ctx.Done():
			s.t.Fatalf("redis-server on port %s does not answer", s.port)
		}
	}
}

// stop kills the server, losing its data, and waits for it to exit. It is idempotent.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// restart kills the server and starts a new one on the same port: all data is lost.
func (s *server) restart() {
	s.stop()
	s.start()
}
