package main

//go:generate go tool ephemeralgen

// Session is a logged-in user's session. Its key is the session ID, the secret in the user's
// cookie.
//
//ephemeral:store id=sessions ttl=500ms
type Session struct {
	UserID string   `json:"userId"`
	Roles  []string `json:"roles,omitempty"`
}
