// Package generatedfield is an error test case: a stored value cannot hold a type that
// ephemeralgen generates, such as another store's key, since the package is loaded without
// the generated declarations; the field's error says so.
package generatedfield

// Presence is one user's presence in a room.
//
//ephemeral:store id=presence ttl=30s key=Room,UserID
type Presence struct {
	Room   string `json:"room"`
	UserID string `json:"userId"`
}

// Audit records whose presence was looked at.
//
//ephemeral:store id=audit ttl=1m key=ID
type Audit struct {
	ID string      `json:"id"`
	Of PresenceKey `json:"of"`
}

// open's call of first has an argument of unknown type (the store is not generated yet), of
// which go/types reports "not enough arguments": a follow-on, not reported.
func open() error { return first(NewAuditStore(nil)) }

func first(_ any, err error) error { return err }
