package plain

import "time"

// kind is an alias of string.
type kind = string

// calendarEntry has key fields of another package's named type, of uint8 and of an alias, and
// an unexported name.
//
//ephemeral:store id=calendar ttl=1h key=Month,Day,Kind name=event
type calendarEntry struct {
	Month time.Month `json:"month"`
	Day   uint8      `json:"day"`
	Kind  kind       `json:"kind"`
	Note  string     `json:"note,omitempty"`
}
