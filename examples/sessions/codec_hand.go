package main

import (
	"encoding/json"
	"time"

	ephemeralrt "github.com/ephemeral-go/ephemeral/runtime"
)

// sessionCodec is a stand-in for the generated codec until ephemeralgen lands.
type sessionCodec struct{}

func (sessionCodec) Encode(dst []byte, v *Session) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}

func (sessionCodec) Decode(src []byte, v *Session) error { return json.Unmarshal(src, v) }

// SessionStore is the typed store of sessions.
type SessionStore = ephemeralrt.Store[Session]

// NewSessionStore returns the store of sessions on b.
func NewSessionStore(b ephemeralrt.Backend, opts ...ephemeralrt.StoreOption) (*SessionStore, error) {
	return ephemeralrt.New[Session](b, sessionCodec{}, ephemeralrt.Config{ID: "sessions", TTL: 500 * time.Millisecond}, opts...)
}
