package jsonc

import (
	"slices"
	"testing"
)

// TestCloneSlice checks that the copies a Chunk makes are equal to their sources, share no
// memory with them or with one another (appending to one, which its capacity makes
// reallocate, changes no other), keep nil and empty apart, and that a large slice that does
// not fit in the block gets an allocation of its own.
func TestCloneSlice(t *testing.T) {
	type names []string
	var c Chunk[string]
	var srcs, copies []names
	for i := range 300 { // several blocks of 256 strings
		src := make(names, i%5)
		for j := range src {
			src[j] = string(rune('a' + (i+j)%26))
		}
		if i%7 == 0 {
			src = nil
		}
		d := CloneSlice(&c, src)
		if (d == nil) != (src == nil) || !slices.Equal(d, src) || cap(d) != len(d) {
			t.Fatalf("copy %d: %q (cap %d), want %q, nil %v", i, d, cap(d), src, src == nil)
		}
		srcs, copies = append(srcs, src), append(copies, d)
	}
	want := make([]names, len(copies))
	for i, d := range copies {
		want[i] = slices.Clone(d)
	}
	for i := range copies {
		for j := range copies[i] {
			copies[i][j] = "changed"
		}
		copies[i] = append(copies[i], "appended")
	}
	for i, src := range srcs {
		if !slices.Equal(src, want[i]) {
			t.Fatalf("source %d changed: %q, want %q", i, src, want[i])
		}
	}
	for i := range copies {
		if got := copies[i][:len(want[i])]; !slices.Equal(got, slices.Repeat([]string{"changed"}, len(want[i]))) {
			t.Fatalf("copy %d: %q after the others changed", i, got)
		}
	}
	if d := CloneSlice(&c, []string{}); d == nil || len(d) != 0 {
		t.Fatalf("copy of an empty slice: %#v", d)
	}
	c.free = c.free[:min(len(c.free), 10)]
	big := make([]string, 100) // more than what is left, and than a quarter of a block of 256
	if d := CloneSlice(&c, big); len(d) != 100 || cap(d) != 100 || len(c.free) > 10 {
		t.Fatalf("large copy: len %d cap %d, %d left in the block", len(d), cap(d), len(c.free))
	}
}
