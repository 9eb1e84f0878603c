package main

import (
	"encoding/json"

	ephemeralrt "github.com/ephemeral-go/ephemeral/runtime"
)

// memberCodec is a stand-in for the generated codec until ephemeralgen lands.
type memberCodec struct{}

func (memberCodec) Encode(dst []byte, v *Member) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}

func (memberCodec) Decode(src []byte, v *Member) error { return json.Unmarshal(src, v) }

// MemberStore is the typed store of members.
type MemberStore = ephemeralrt.Store[Member]

// NewMemberStore returns the store of members on b.
func NewMemberStore(b ephemeralrt.Backend, opts ...ephemeralrt.StoreOption) (*MemberStore, error) {
	return ephemeralrt.New[Member](b, memberCodec{}, ephemeralrt.Config{ID: "presence", TTL: 10e9}, opts...)
}
