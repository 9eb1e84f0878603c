package ephemeral

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// KeyCodec converts the keys K of a store to their string form, the key a backend stores, and
// back. Format must be injective and Parse its inverse: Parse(Format(k)) returns k, and Parse
// fails, with an error wrapping [ErrInvalidKey], on any string Format does not return (a key
// written by another program). ephemeralgen generates the key type and both functions of a
// store with key fields; [StringKeys] is the codec of plain string keys.
//
// A key is parsed once per event and per process, and the same K goes to every reader and
// mirror that gets the event: unlike values, keys are not copied for each. A K of strings,
// numbers and arrays of them (every generated key type) is copied by assignment; a K that
// holds a slice, map or pointer shares what they point to, so treat it as read-only.
type KeyCodec[K any] struct {
	Format func(K) string
	Parse  func(string) (K, error)
}

// StringKeys returns the KeyCodec of plain string keys: both functions return the key as it is.
func StringKeys() KeyCodec[string] {
	return KeyCodec[string]{Format: formatString, Parse: parseString}
}

func formatString(k string) string         { return k }
func parseString(k string) (string, error) { return k, nil }

// Composite keys
//
// A generated key type (ephemeralgen's key=A,B,...) turns its fields into one string key: each
// field's text is escaped, then the parts are joined with [KeySep]. Escaping replaces "%" with
// "%25" and ":" with "%3A" and leaves every other byte alone, so keys stay readable
// ("room-1:alice") and the mapping is injective: an escaped part never contains KeySep, so a
// key splits back into exactly its parts. For the same reason the prefix of the first k parts,
// [JoinKeyPrefix], matches exactly the keys whose first k parts are equal to them.

// KeySep separates the parts of a composite key.
const KeySep = ':'

// AppendKeyPart appends the escaped form of part to dst.
func AppendKeyPart(dst []byte, part string) []byte {
	for i := 0; i < len(part); i++ {
		switch c := part[i]; c {
		case '%':
			dst = append(dst, "%25"...)
		case KeySep:
			dst = append(dst, "%3A"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// JoinKey returns the composite key of parts: each part escaped, joined with [KeySep].
func JoinKey(parts ...string) string {
	return string(appendJoined(make([]byte, 0, joinedLen(parts)), parts))
}

// JoinKeyPrefix returns the prefix shared by every composite key whose leading parts are
// parts, and by no other: JoinKey(parts...) followed by [KeySep]. Pass it to [WithPrefix].
func JoinKeyPrefix(parts ...string) string {
	b := appendJoined(make([]byte, 0, joinedLen(parts)+1), parts)
	return string(append(b, KeySep))
}

func joinedLen(parts []string) int {
	n := len(parts)
	for _, p := range parts {
		n += len(p)
	}
	return n
}

func appendJoined(dst []byte, parts []string) []byte {
	for i, p := range parts {
		if i > 0 {
			dst = append(dst, KeySep)
		}
		dst = AppendKeyPart(dst, p)
	}
	return dst
}

// SplitKey splits a composite key into its n unescaped parts. It accepts exactly the strings
// [JoinKey] returns for n parts; anything else is an error wrapping [ErrInvalidKey].
func SplitKey(key string, n int) ([]string, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: %s: cannot split into %d parts", ErrInvalidKey, backend.Quote(key), n)
	}
	if got := strings.Count(key, string(KeySep)) + 1; got != n {
		return nil, fmt.Errorf("%w: %s has %d parts, want %d", ErrInvalidKey, backend.Quote(key), got, n)
	}
	parts := make([]string, 0, n)
	for p := range strings.SplitSeq(key, string(KeySep)) {
		u, err := unescapeKeyPart(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidKey, backend.Quote(key), err)
		}
		parts = append(parts, u)
	}
	return parts, nil
}

// unescapeKeyPart reverses AppendKeyPart. It rejects every escape AppendKeyPart does not write,
// so that each key has one spelling.
func unescapeKeyPart(p string) (string, error) {
	i := strings.IndexByte(p, '%')
	if i < 0 {
		return p, nil
	}
	b := make([]byte, 0, len(p))
	for ; i >= 0; i = strings.IndexByte(p, '%') {
		b = append(b, p[:i]...)
		switch {
		case strings.HasPrefix(p[i:], "%25"):
			b = append(b, '%')
		case strings.HasPrefix(p[i:], "%3A"):
			b = append(b, KeySep)
		default:
			return "", fmt.Errorf("bad escape at %s", backend.Quote(p[i:]))
		}
		p = p[i+3:]
	}
	return string(append(b, p...)), nil
}

// FormatKeyInt returns the key part of a signed integer field: its decimal form.
func FormatKeyInt(v int64) string { return strconv.FormatInt(v, 10) }

// FormatKeyUint returns the key part of an unsigned integer field: its decimal form.
func FormatKeyUint(v uint64) string { return strconv.FormatUint(v, 10) }

// ParseKeyInt parses a key part written by [FormatKeyInt] for a field of bitSize bits (0 for
// int). Only the canonical decimal form is accepted ("-5", not "+5" or "-05"); anything else
// is an error wrapping [ErrInvalidKey].
func ParseKeyInt(s string, bitSize int) (int64, error) {
	v, err := strconv.ParseInt(s, 10, bitSize)
	if err != nil || strconv.FormatInt(v, 10) != s {
		return 0, fmt.Errorf("%w: part %s is not a canonical int%s", ErrInvalidKey, backend.Quote(s), bitsName(bitSize))
	}
	return v, nil
}

// ParseKeyUint parses a key part written by [FormatKeyUint] for a field of bitSize bits (0 for
// uint). Only the canonical decimal form is accepted; anything else is an error wrapping
// [ErrInvalidKey].
func ParseKeyUint(s string, bitSize int) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, bitSize)
	if err != nil || strconv.FormatUint(v, 10) != s {
		return 0, fmt.Errorf("%w: part %s is not a canonical uint%s", ErrInvalidKey, backend.Quote(s), bitsName(bitSize))
	}
	return v, nil
}

func bitsName(bitSize int) string {
	if bitSize == 0 {
		return ""
	}
	return strconv.Itoa(bitSize)
}
