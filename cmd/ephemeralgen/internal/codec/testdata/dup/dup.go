// Package dup has two types in two output files that both contain Inner.
package dup

import "time"

// Inner is needed by A and B.
type Inner struct {
	At   time.Time
	Tags []string
}

// A is generated into a_gen.go.
type A struct {
	In   Inner
	List []Inner
}

// B is generated into b_gen.go.
type B struct {
	In *Inner
	M  map[string]Inner
}
