package main

//go:generate go tool ephemeralgen

// Todo is one entry of the to-do list: something to do before it expires. Its text is its key,
// so adding a text that is on the list already renews it.
//
//ephemeral:store id=todo ttl=30s key=Text
type Todo struct {
	Text string `json:"text"`
}
