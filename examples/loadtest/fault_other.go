//go:build !linux

package main

import "time"

// pageFaultTime returns 0: the cost of a page fault is only measured on Linux.
func pageFaultTime() time.Duration { return 0 }
