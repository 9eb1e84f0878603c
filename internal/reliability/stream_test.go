package reliability

import (
	"context"
	"fmt"
	"sync"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// stream receives the events of one reader in a goroutine of its own, as an application
// would, and keeps them for the checks.
type stream struct {
	r       *ephemeral.Reader[string, string]
	start   backend.Cursor // the position the reader started after
	prefix  string
	done    chan struct{}
	changed chan struct{} // gets a value after every event or error

	mu     sync.Mutex
	events []ephemeral.Event[string, string]
	err    error // why Recv stopped
}

// startStream starts receiving from r, which started after start.
func startStream(r *ephemeral.Reader[string, string], start backend.Cursor, prefix string) *stream {
	s := &stream{r: r, start: start, prefix: prefix, done: make(chan struct{}), changed: make(chan struct{}, 1)}
	go s.run()
	return s
}

func (s *stream) run() {
	defer close(s.done)
	for {
		ev, err := s.r.Recv(context.Background())
		s.mu.Lock()
		if err != nil {
			s.err = err
		} else {
			s.events = append(s.events, ev)
		}
		s.mu.Unlock()
		select {
		case s.changed <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// received returns the events so far and the error that stopped the stream, if any.
func (s *stream) received() ([]ephemeral.Event[string, string], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events, s.err
}

// wait calls check with the events received so far, after each new one, until check reports
// that it has all it needs or fails, the stream stops, or ctx is done.
func (s *stream) wait(ctx context.Context, check func([]ephemeral.Event[string, string]) (bool, error)) error {
	for {
		evs, stopped := s.received()
		ok, err := check(evs)
		switch {
		case err != nil:
			return err
		case ok:
			return nil
		case stopped != nil:
			return fmt.Errorf("reader stopped after %d events: %w", len(evs), stopped)
		}
		select {
		case <-s.changed:
		case <-ctx.Done():
			return fmt.Errorf("waited in vain after %d events: %w", len(evs), ctx.Err())
		}
	}
}

// close closes the reader and waits for the goroutine to end.
func (s *stream) close() {
	s.r.Close()
	<-s.done
}
