package backend

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cursor is a position in the event stream of one (store ID, tenant): the epoch of the
// tenant's state and the last version seen. Backends produce and consume Cursors; the typed API
// passes them as opaque strings (see [Cursor.String] and [ParseCursor]).
//
// Seq 0 is the position before the first event of the epoch.
type Cursor struct {
	// Epoch names one lifetime of the tenant's state. A backend picks a new epoch when it
	// creates the state (for the first time, or again after losing it, as after a FLUSHALL),
	// so a cursor of an old epoch can be told apart from one of the current epoch. Epochs of
	// [NewEpoch] begin with the time the state was created, so a later epoch of one tenant
	// sorts after an earlier one (as long as the backend's clock does not go back).
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
		return Cursor{}, invalidCursor(s)
	}
	epoch, num := s[:i], s[i+1:]
	if !ValidEpoch(epoch) || num == "" || (len(num) > 1 && num[0] == '0') || num[0] == '+' {
		return Cursor{}, invalidCursor(s)
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return Cursor{}, invalidCursor(s)
	}
	return Cursor{Epoch: epoch, Seq: seq}, nil
}

// invalidCursor returns the error of s, which is not the text of a cursor.
func invalidCursor(s string) error {
	return fmt.Errorf("%w: %s is not of the form <epoch>-<version> of a snapshot's or an event's Cursor", ErrInvalidCursor, Quote(s))
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

// NewEpoch returns a fresh epoch for a backend that creates a tenant's state at now: 12
// lower-case hex digits of now in Unix milliseconds, then 8 random hex digits. Epochs made by
// NewEpoch sort as strings in the order of their times (see [EpochTime]); two made in the same
// millisecond sort in no particular order. Epochs of the older form, 16 random hex digits, stay
// valid but have no time.
func NewEpoch(now time.Time) string {
	var b [epochBytes]byte
	ms := uint64(max(now.UnixMilli(), 0))
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// epochBytes is the length of an epoch of NewEpoch in bytes: 6 of time, 4 random.
const epochBytes = 10

// EpochTime returns the creation time of an epoch made by [NewEpoch]; ok is false for an epoch
// of another form.
func EpochTime(epoch string) (t time.Time, ok bool) {
	if len(epoch) != 2*epochBytes {
		return time.Time{}, false
	}
	for i := 0; i < len(epoch); i++ {
		if c := epoch[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return time.Time{}, false
		}
	}
	ms, err := strconv.ParseUint(epoch[:12], 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(ms)).UTC(), true
}
