package main

import (
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// keyText draws strings rich in the separator and the escape character.
func keyText() *rapid.Generator[string] {
	return rapid.OneOf(rapid.StringMatching(`[a:%3A25]{0,6}`), rapid.String())
}

// TestPresenceKeyRoundTrip checks the generated key code: String and ParsePresenceKey are
// inverse, and PresenceKeyPrefix(room) matches exactly the keys of that room.
func TestPresenceKeyRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		k := PresenceKey{Room: keyText().Draw(t, "room"), UserID: keyText().Draw(t, "user")}
		got, err := ParsePresenceKey(k.String())
		if err != nil || got != k {
			t.Fatalf("ParsePresenceKey(%q) = %+v, %v; want %+v", k.String(), got, err, k)
		}
		room := keyText().Draw(t, "other room")
		if strings.HasPrefix(k.String(), PresenceKeyPrefix(room)) != (room == k.Room) {
			t.Fatalf("key %q, prefix %q of room %q", k.String(), PresenceKeyPrefix(room), room)
		}
		v := Presence{Room: k.Room, UserID: k.UserID}
		if v.EphemeralKey() != k {
			t.Fatalf("EphemeralKey() = %+v, want %+v", v.EphemeralKey(), k)
		}
	})
}

func FuzzParsePresenceKey(f *testing.F) {
	f.Add("lobby:alice")
	f.Add("a%3Ab:c%25")
	f.Add("a%3ab:c")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParsePresenceKey(s)
		if err == nil && k.String() != s {
			t.Fatalf("ParsePresenceKey(%q) = %+v, whose String is %q", s, k, k.String())
		}
	})
}
