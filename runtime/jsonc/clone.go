package jsonc

import "unsafe"

// A Chunk hands out copies of slices carved from blocks of maxBlock bytes that the copies
// share, as a Decoder's strings share theirs: the generated CloneFunc of many values makes one
// allocation for many small slices instead of one each. Each copy's capacity is its length,
// so appending to one cannot change another; a copy kept alive keeps its block alive. A slice
// that does not fit in what is left of the block gets a new block, or memory of its own if it
// is more than a quarter of one. The zero Chunk is ready to use; it is not safe for
// concurrent use.
type Chunk[E any] struct{ free []E }

// CloneSlice returns a copy of s made by c: nil if s is nil, empty and not nil if s is empty.
func CloneSlice[S ~[]E, E any](c *Chunk[E], s S) S {
	if n := len(s); n != 0 && n <= len(c.free) {
		d := S(c.free[:n:n])
		c.free = c.free[n:]
		copy(d, s)
		return d
	}
	return cloneSlow(c, s)
}

// cloneSlow is CloneSlice for a slice that is empty or does not fit in c's block.
func cloneSlow[S ~[]E, E any](c *Chunk[E], s S) S {
	n := len(s)
	if n == 0 {
		return s[:0:0] // nil stays nil; an empty slice has nothing to share
	}
	per := maxBlock / max(int(unsafe.Sizeof(*new(E))), 1)
	if n > per/4 {
		d := make(S, n)
		copy(d, s)
		return d
	}
	block := make([]E, per)
	d := S(block[:n:n])
	c.free = block[n:]
	copy(d, s)
	return d
}
