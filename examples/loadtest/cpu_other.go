//go:build !unix

package main

import "time"

// cpuTime returns 0: the process's CPU time is only read on Unix.
func cpuTime() time.Duration { return 0 }

// syscallTime returns 0: the cost of a system call is only measured on Unix.
func syscallTime() time.Duration { return 0 }
