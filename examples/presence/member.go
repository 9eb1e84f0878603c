package main

//go:generate go tool ephemeralgen

// Member is one visitor present in a room. The room is the tenant and the member's ID the key,
// so the value only carries what the page shows.
//
//ephemeral:store id=presence ttl=10s
type Member struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status Status `json:"status"`
}

// Status is what a member is doing: looking at the page or not.
type Status string

// The statuses a page reports.
const (
	StatusActive Status = "active" // the page is visible
	StatusAway   Status = "away"   // the page is hidden (another tab, minimised window)
)

// valid reports whether s is one of the known statuses.
func (s Status) valid() bool { return s == StatusActive || s == StatusAway }
