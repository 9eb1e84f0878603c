// Package plain is a golden test case: a store with plain string keys, an unexported type,
// and a package that declares the names generated code would import under.
package plain

//go:generate go tool ephemeralgen

//ephemeral:store id=sessions ttl=1500ms
type session struct {
	User string `json:"user"`
}

var (
	ephemeral = "taken"
	jsonc     = "taken"
)
