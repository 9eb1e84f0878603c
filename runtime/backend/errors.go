package backend

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Sentinel errors, re-exported by package ephemeral. Errors of a store wrap one of these when
// they apply, so callers test them with [errors.Is]. A call that fails with any of them has
// written nothing and emitted no event.
var (
	ErrCapacity        = errors.New("ephemeral: tenant is at capacity")
	ErrPayloadTooLarge = errors.New("ephemeral: payload too large")
	ErrInvalidKey      = errors.New("ephemeral: invalid key")
	ErrInvalidTenant   = errors.New("ephemeral: invalid tenant")
	ErrInvalidID       = errors.New("ephemeral: invalid store id")
	ErrInvalidTTL      = errors.New("ephemeral: invalid ttl")
	ErrInvalidCursor   = errors.New("ephemeral: invalid cursor")
	ErrInvalidConfig   = errors.New("ephemeral: invalid config")
	ErrConflict        = errors.New("ephemeral: condition failed")
	ErrClosed          = errors.New("ephemeral: closed")
	ErrEncode          = errors.New("ephemeral: cannot encode value")
	ErrDecode          = errors.New("ephemeral: cannot decode value")
	ErrCorrupt         = errors.New("ephemeral: corrupt data in the store")
)

// CapacityError returns the error of an upsert of the new key key in a tenant that holds its
// limit of live entries, Limits.MaxEntries: it wraps [ErrCapacity] and says what to do.
func CapacityError(key string, limit int) error {
	return fmt.Errorf("%w: new key %s: the tenant holds its limit of %d live entries (Limits.MaxEntries: raise it, or remove entries)",
		ErrCapacity, Quote(key), limit)
}

// CondKind is the kind of a write [Condition].
type CondKind uint8

// Condition kinds.
const (
	CondNone      CondKind = iota // write unconditionally
	CondIfNew                     // the key is not live (missing or expired)
	CondIfExists                  // the key is live
	CondIfVersion                 // the key is live and its version is Condition.Version
)

// Condition guards a write; when it does not hold the write fails with a [ConflictError].
type Condition struct {
	Kind    CondKind
	Version uint64 // for CondIfVersion
	// Epoch, for CondIfVersion, also requires the tenant's state to be of this epoch: the
	// version then names one write for the tenant's whole life (a fencing token). "" means any
	// epoch.
	Epoch string
}

// Check returns nil when c holds for key, whose live entry is at version of epoch (live is
// false when the key is missing or expired), and otherwise a *[ConflictError].
func (c Condition) Check(key string, live bool, epoch string, version uint64) error {
	ok := true
	switch c.Kind {
	case CondIfNew:
		ok = !live
	case CondIfExists:
		ok = live
	case CondIfVersion:
		ok = live && version == c.Version && (c.Epoch == "" || c.Epoch == epoch)
	}
	if ok {
		return nil
	}
	if !live {
		version = 0
	}
	if c.Epoch == "" {
		epoch = ""
	}
	return &ConflictError{Key: key, Cond: c, Live: live, Version: version, Epoch: epoch}
}

// ConflictError is the error of a write whose condition did not hold. It matches
// [ErrConflict] with [errors.Is]; use [errors.As] to learn the key's state.
type ConflictError struct {
	Key     string
	Cond    Condition // the condition that failed
	Live    bool      // whether the key was live
	Version uint64    // the key's version when it was live, else 0
	// Epoch is the epoch of the tenant's state when Cond has an epoch, else "".
	Epoch string
}

// Error gives the key, its state and the condition it failed.
func (e *ConflictError) Error() string {
	state := "is not live"
	switch {
	case e.Live && e.Cond.Epoch != "":
		state = fmt.Sprintf("is at version %d of epoch %s", e.Version, e.Epoch)
	case e.Live:
		state = fmt.Sprintf("is at version %d", e.Version)
	}
	var want string
	switch e.Cond.Kind {
	case CondIfNew:
		want = "want it not live"
	case CondIfExists:
		want = "want it live"
	case CondIfVersion:
		want = fmt.Sprintf("want version %d", e.Cond.Version)
		if e.Cond.Epoch != "" {
			want += " of epoch " + e.Cond.Epoch
		}
	}
	return fmt.Sprintf("%v: key %s %s, %s", ErrConflict, Quote(e.Key), state, want)
}

// Is reports whether target is [ErrConflict].
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// maxQuoted is the most bytes of an input that Quote shows.
const maxQuoted = 64

// Quote returns s as a Go string literal, as %q formats it, for an error message; an input
// longer than 64 bytes is cut there (at a character boundary) and its length added, so that a
// bad input of a megabyte makes an error of a line.
func Quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}
