package ephemeral

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// keyPart draws strings rich in the bytes escaping cares about.
func keyPart() *rapid.Generator[string] {
	return rapid.OneOf(
		rapid.StringMatching(`[a-c%:3A25]{0,8}`),
		rapid.String(),
	)
}

func TestJoinKeyExamples(t *testing.T) {
	tests := []struct {
		parts []string
		key   string
	}{
		{[]string{"room-1", "alice"}, "room-1:alice"},
		{[]string{"a:b", "c"}, "a%3Ab:c"},
		{[]string{"a", "b:c"}, "a:b%3Ac"},
		{[]string{"100%", ""}, "100%25:"},
		{[]string{"", ""}, ":"},
		{[]string{"%3A"}, "%253A"},
		{[]string{"héllo wörld"}, "héllo wörld"},
	}
	for _, tt := range tests {
		if got := JoinKey(tt.parts...); got != tt.key {
			t.Errorf("JoinKey(%q) = %q, want %q", tt.parts, got, tt.key)
		}
		got, err := SplitKey(tt.key, len(tt.parts))
		if err != nil || !slices.Equal(got, tt.parts) {
			t.Errorf("SplitKey(%q, %d) = %q, %v; want %q", tt.key, len(tt.parts), got, err, tt.parts)
		}
	}
}

func TestSplitKeyRejects(t *testing.T) {
	tests := []struct {
		key string
		n   int
	}{
		{"a:b", 1},
		{"a", 2},
		{"a:b:c", 2},
		{"a%", 1},
		{"a%3", 1},
		{"a%3a", 1},  // lower case: JoinKey writes %3A only
		{"a%41", 1},  // an escape JoinKey never writes
		{"a%2", 1},   // truncated
		{"%%25", 1},  // bare percent
		{"a", 0},     // nonsense count
		{"a:%zz", 2}, // bad second part
	}
	for _, tt := range tests {
		if parts, err := SplitKey(tt.key, tt.n); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("SplitKey(%q, %d) = %q, %v; want ErrInvalidKey", tt.key, tt.n, parts, err)
		}
	}
}

func TestKeyRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		parts := rapid.SliceOfN(keyPart(), 1, 4).Draw(t, "parts")
		key := JoinKey(parts...)
		got, err := SplitKey(key, len(parts))
		if err != nil {
			t.Fatalf("SplitKey(%q): %v", key, err)
		}
		if !slices.Equal(got, parts) {
			t.Fatalf("SplitKey(JoinKey(%q)) = %q", parts, got)
		}
	})
}

func TestKeyInjective(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 3).Draw(t, "n")
		a := rapid.SliceOfN(keyPart(), n, n).Draw(t, "a")
		b := rapid.SliceOfN(keyPart(), n, n).Draw(t, "b")
		if (JoinKey(a...) == JoinKey(b...)) != slices.Equal(a, b) {
			t.Fatalf("JoinKey(%q) = %q, JoinKey(%q) = %q", a, JoinKey(a...), b, JoinKey(b...))
		}
	})
}

// TestKeyPrefixExact checks that the prefix of the first k parts matches a key exactly when the
// key's first k parts are equal to them.
func TestKeyPrefixExact(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 4).Draw(t, "n")
		k := rapid.IntRange(1, n-1).Draw(t, "k")
		key := rapid.SliceOfN(keyPart(), n, n).Draw(t, "key")
		lead := rapid.SliceOfN(keyPart(), k, k).Draw(t, "lead")
		if rapid.Bool().Draw(t, "share") {
			lead = slices.Clone(key[:k])
		}
		matches := strings.HasPrefix(JoinKey(key...), JoinKeyPrefix(lead...))
		if want := slices.Equal(key[:k], lead); matches != want {
			t.Fatalf("key %q, prefix %q: match %v, want %v", JoinKey(key...), JoinKeyPrefix(lead...), matches, want)
		}
	})
}

// TestSplitKeyCanonical checks that every string SplitKey accepts is one JoinKey writes.
func TestSplitKeyCanonical(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.StringMatching(`[a%:3A25]{0,12}`).Draw(t, "s")
		n := rapid.IntRange(1, 3).Draw(t, "n")
		parts, err := SplitKey(s, n)
		if err == nil && JoinKey(parts...) != s {
			t.Fatalf("SplitKey(%q, %d) = %q, but JoinKey gives %q", s, n, parts, JoinKey(parts...))
		}
	})
}

func FuzzSplitKey(f *testing.F) {
	f.Add("a%3Ab:c", 2)
	f.Add("%", 1)
	f.Fuzz(func(t *testing.T, s string, n int) {
		parts, err := SplitKey(s, n%8)
		if err == nil && JoinKey(parts...) != s {
			t.Fatalf("SplitKey(%q, %d) = %q, but JoinKey gives %q", s, n%8, parts, JoinKey(parts...))
		}
	})
}

func TestKeyIntRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := rapid.Int64().Draw(t, "v")
		got, err := ParseKeyInt(FormatKeyInt(v), 64)
		if err != nil || got != v {
			t.Fatalf("ParseKeyInt(FormatKeyInt(%d)) = %d, %v", v, got, err)
		}
		u := rapid.Uint64().Draw(t, "u")
		gotU, err := ParseKeyUint(FormatKeyUint(u), 64)
		if err != nil || gotU != u {
			t.Fatalf("ParseKeyUint(FormatKeyUint(%d)) = %d, %v", u, gotU, err)
		}
	})
}

func TestParseKeyIntRejects(t *testing.T) {
	for _, s := range []string{"", "+1", "01", "-0", "1.0", " 1", "x", "128"} {
		if v, err := ParseKeyInt(s, 8); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParseKeyInt(%q, 8) = %d, %v; want ErrInvalidKey", s, v, err)
		}
	}
	for _, s := range []string{"", "+1", "01", "-1", "256"} {
		if v, err := ParseKeyUint(s, 8); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParseKeyUint(%q, 8) = %d, %v; want ErrInvalidKey", s, v, err)
		}
	}
	if v, err := ParseKeyInt("-128", 8); err != nil || v != math.MinInt8 {
		t.Errorf("ParseKeyInt(-128, 8) = %d, %v", v, err)
	}
}
