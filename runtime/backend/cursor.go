package backend

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Cursor is a position in the event stream of one (store ID, tenant): the epoch of the
// tenant's state and the last version seen. Backends produce and consume Cursors; the typed API
// passes them as opaque strings (see [Cursor.String] and [ParseCursor]).
//
// Seq 0 is the position before the first event of the epoch.
type Cursor struct {
	// Epoch names one lifetime of the tenant's state. A backend picks a new epoch when it
	// creates the state (for the first time, or again after losing it, as after a FLUSHALL),
	// so a cursor of an old epoch can be told apart from one of the current epoch.
	Epoch string
	Seq   uint64
}

// MaxEpochBytes is the longest epoch a cursor may carry.
const MaxEpochBytes = 64

// String returns the cursor's opaque text form, "<epoch>-<seq>".
func (c Cursor) String() string {
	return c.Epoch + "-" + strconv.FormatUint(c.Seq, 10)
}

// ParseCursor parses the text form of a cursor. Any input that [Cursor.String] cannot produce
// from a valid cursor is an error wrapping [ErrInvalidCursor].
func ParseCursor(s string) (Cursor, error) {
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return Cursor{}, fmt.Errorf("%w: %s", ErrInvalidCursor, Quote(s))
	}
	epoch, num := s[:i], s[i+1:]
	if !ValidEpoch(epoch) || num == "" || (len(num) > 1 && num[0] == '0') || num[0] == '+' {
		return Cursor{}, fmt.Errorf("%w: %s", ErrInvalidCursor, Quote(s))
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w: %s", ErrInvalidCursor, Quote(s))
	}
	return Cursor{Epoch: epoch, Seq: seq}, nil
}

// ValidEpoch reports whether e can be the epoch of a [Cursor]: 1 to [MaxEpochBytes] ASCII
// letters and digits.
func ValidEpoch(e string) bool {
	if e == "" || len(e) > MaxEpochBytes {
		return false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// NewEpoch returns a fresh random epoch (16 lower-case hex digits) for a backend that creates
// a tenant's state.
func NewEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
