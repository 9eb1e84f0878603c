package ephemeral

import "github.com/ephemeral-go/ephemeral/runtime/backend"

// Sentinel errors. Errors returned by a [Store] wrap one of these when they apply, so callers test
// them with [errors.Is]. A call that fails with any of them has written nothing and emitted no
// event. They are the errors of package runtime/backend, so backends return them too.
var (
	// ErrCapacity: the tenant already holds MaxEntries live entries and the key is new.
	ErrCapacity = backend.ErrCapacity
	// ErrPayloadTooLarge: the encoded value is longer than MaxPayloadBytes, or a remove's
	// reason longer than MaxReasonBytes.
	ErrPayloadTooLarge = backend.ErrPayloadTooLarge
	// ErrInvalidKey: the key is empty or longer than MaxKeyBytes, or a stored key does not
	// parse as the store's key type.
	ErrInvalidKey = backend.ErrInvalidKey
	// ErrInvalidTenant: the tenant is empty or longer than MaxTenantBytes.
	ErrInvalidTenant = backend.ErrInvalidTenant
	// ErrInvalidID: the store ID is empty, longer than MaxIDBytes or not valid UTF-8.
	ErrInvalidID = backend.ErrInvalidID
	// ErrInvalidTTL: the TTL is not positive.
	ErrInvalidTTL = backend.ErrInvalidTTL
	// ErrInvalidCursor: the cursor was not produced by this library, or is beyond the tenant's
	// last event.
	ErrInvalidCursor = backend.ErrInvalidCursor
	// ErrInvalidConfig: a store configuration or option is invalid.
	ErrInvalidConfig = backend.ErrInvalidConfig
	// ErrConflict: a conditional write's condition did not hold; the error is a
	// *[ConflictError].
	ErrConflict = backend.ErrConflict
	// ErrClosed: the reader, mirror or backend was closed.
	ErrClosed = backend.ErrClosed
	// ErrEncode: the store's codec could not encode a value (a MarshalJSON method failed, a
	// float is NaN or infinite, ...).
	ErrEncode = backend.ErrEncode
	// ErrDecode: a stored value could not be decoded by the store's codec.
	ErrDecode = backend.ErrDecode
	// ErrCorrupt: the backend found data it cannot use in the tenant's keys (junk written by
	// another program, a bad manual fix): a malformed version counter, epoch, stored entry or
	// expiry. The error names the place and quotes at most 64 bytes of the bad data. The
	// call wrote nothing; the tenant works again once the bad data is removed or expires.
	ErrCorrupt = backend.ErrCorrupt
)

// ConflictError is the error of a write whose condition ([IfNew], [IfExists], [IfVersion]) did
// not hold: it names the key, the condition, and whether and at which version the key was live.
// It matches [ErrConflict].
type ConflictError = backend.ConflictError

// Limits on identifiers, enforced by every store.
const (
	MaxKeyBytes    = 512  // longest key, in bytes
	MaxTenantBytes = 256  // longest tenant, in bytes
	MaxIDBytes     = 256  // longest store ID, in bytes
	MaxReasonBytes = 1024 // longest reason of a remove, in bytes
)
