package main

import (
	"syscall"
	"time"
)

// pageFaultTime returns how long the kernel takes to map one page of memory that a program
// touches for the first time (a page fault on fresh anonymous memory, which is how a Go heap
// and its goroutine stacks grow): the least of three rounds over 4 MiB, or 0 if the memory
// cannot be mapped. Where transparent huge pages back such memory at once (THP "always"; it
// was "madvise" where the figures in the docs were taken), it is the time per page of a huge
// page's fault.
func pageFaultTime() time.Duration {
	const size = 4 << 20
	page := syscall.Getpagesize()
	best := time.Duration(1<<63 - 1)
	for range 3 {
		b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			return 0
		}
		start := time.Now()
		for i := 0; i < size; i += page {
			b[i] = 1
		}
		best = min(best, time.Since(start)/time.Duration(size/page))
		_ = syscall.Munmap(b)
	}
	return best
}
