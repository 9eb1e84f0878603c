//go:build unix

package main

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time (user and system) this process has used so far.
func cpuTime() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// syscallTime returns how long one system call (getppid, which does nothing) takes on this
// machine: the least of five rounds of 2,000, so that a round cut short by another process
// counts for nothing.
func syscallTime() time.Duration {
	const calls = 2000
	best := time.Duration(1<<63 - 1)
	for range 5 {
		start := time.Now()
		for range calls {
			syscall.Getppid()
		}
		best = min(best, time.Since(start)/calls)
	}
	return best
}
