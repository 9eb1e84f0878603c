package main

//go:generate go tool ephemeralgen

// Sample is the value every scenario writes: a small presence-like record, about 40 bytes
// encoded.
//
//ephemeral:store id=loadtest ttl=1m
type Sample struct {
	Writer int    `json:"writer"`
	Seq    int    `json:"seq"`
	Status string `json:"status"`
}
