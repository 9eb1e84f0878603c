// Package other holds types of a second package that codectest's types contain, so that the
// generated codecs are tested across packages.
package other

// Item has the same name as codectest.Item; their helpers must not collide.
type Item struct {
	ID   int      `json:"id"`
	Name string   `json:"name,omitempty"`
	Tags []string `json:"tags"`
}

// Base is embedded in codectest types; its fields are promoted.
type Base struct {
	Kind  string `json:"kind"`
	Level int
}
