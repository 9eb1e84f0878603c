// Package presence is a golden test case: a store with a two-field key, and a store with
// three key fields of named and integer types.
package presence

//go:generate go tool ephemeralgen

import "time"

// Status is a user's status.
type Status string

// RoomID names a room.
type RoomID string

// Presence is one user's presence in a room.
//
//ephemeral:store id=presence ttl=30s key=Room,UserID
type Presence struct {
	Room   string    `json:"room"`
	UserID string    `json:"userId"`
	Status Status    `json:"status"`
	Since  time.Time `json:"since"`
}

// Seat is a seat held in a room.
//
//ephemeral:store id=seats ttl=1m30s key=Room,Row,Number tenant=venue maxEntries=500 maxPayload=1024 retention=2m maxEvents=1000 name=Hold
type Seat struct {
	Room   RoomID `json:"room"`
	Row    int16  `json:"row"`
	Number uint   `json:"number"`
	Holder string `json:"holder"`
}
