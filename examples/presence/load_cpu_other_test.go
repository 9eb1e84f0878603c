//go:build !unix

package main

import "time"

// cpuTime returns 0: the CPU time of the process is not read on this system.
func cpuTime() time.Duration { return 0 }

// openFileLimit returns 0: the limit of file descriptors is not read on this system.
func openFileLimit() int { return 0 }
