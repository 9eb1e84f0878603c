// Package storetest is the conformance suite of ephemeral backends: every [runtime.Backend]
// must pass [Run], as database/sql drivers pass their driver tests.
package storetest

import (
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime"
)

// Harness is one fresh, empty backend under test and the way to move its time.
type Harness struct {
	// Backend is the backend under test. The factory that returns the harness registers its
	// cleanup with t.Cleanup.
	Backend runtime.Backend
	// Advance moves the backend's clock forward by d: after it returns, the backend sees the
	// new time and processes the expiries due by then (their events may still be on their way).
	// A fake clock is advanced; on a real server Advance sleeps.
	Advance func(t testing.TB, d time.Duration)
	// RealTime reports that Advance sleeps: the suite then uses fewer and shorter waits.
	RealTime bool
}

// Run runs the whole suite; newHarness is called for each test case and returns a fresh backend.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	_ = newHarness // TODO(storetest): the cases
}
