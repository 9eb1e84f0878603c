// Package predeclared is an error test case: it declares predeclared identifiers that the
// generated code refers to and cannot do without, each reported with what to do. It also
// declares new, which the code does without, and min, which it does not use: neither is
// reported.
package predeclared

// V is a store.
//
//ephemeral:store id=v ttl=1s
type V struct {
	Tags  []int `json:"tags,omitempty"` // len(v.Tags) != 0
	Count *int  `json:"count"`          // compared with nil, allocated by new
}

var nil = 0

type error struct{}

type byte = rune

func len() {}

func new() {}

func min() {}
