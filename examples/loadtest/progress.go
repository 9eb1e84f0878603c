package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// progress reports on stderr which row runs. On a terminal it keeps one line, the row and how
// far it got, rewritten every quarter of a second; elsewhere (a file, a pipe, CI's log) it
// writes one plain line as each row starts and no control characters.
type progress struct {
	w    io.Writer
	tty  bool
	done atomic.Int64

	mu      sync.Mutex
	name    string
	total   int64
	quit    chan struct{}
	stopped chan struct{}
}

// newProgress starts printing to w.
func newProgress(w io.Writer) *progress {
	p := &progress{w: w, tty: isTerminal(w), quit: make(chan struct{}), stopped: make(chan struct{})}
	if !p.tty {
		close(p.stopped)
		return p
	}
	go p.loop()
	return p
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) loop() {
	defer close(p.stopped)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			p.print()
		case <-p.quit:
			fmt.Fprint(p.w, "\r\033[K")
			return
		}
	}
}

// start begins a row of total steps and prints it.
func (p *progress) start(name string, total int) {
	p.mu.Lock()
	p.name, p.total = name, int64(total)
	p.done.Store(0)
	p.mu.Unlock()
	if !p.tty {
		fmt.Fprintf(p.w, "loadtest: %s (%d steps)\n", name, total)
		return
	}
	p.print()
}

// add counts n steps of the current row.
func (p *progress) add(n int) { p.done.Add(int64(n)) }

func (p *progress) print() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.name != "" {
		fmt.Fprintf(p.w, "\r\033[Kloadtest: %s %d/%d", p.name, p.done.Load(), p.total)
	}
}

// stop clears the line and stops printing. It is idempotent.
func (p *progress) stop() {
	p.mu.Lock()
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	p.mu.Unlock()
	<-p.stopped
}
