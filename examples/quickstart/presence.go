package main

//go:generate go tool ephemeralgen

// Presence is one user's presence in a room.
//
//ephemeral:store id=presence ttl=30s key=Room,UserID
type Presence struct {
	Room   string `json:"room"`
	UserID string `json:"userId"`
	Status string `json:"status"`
}
