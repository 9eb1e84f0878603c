package runtime

import "errors"

// Sentinel errors. Errors returned by a [Store] wrap one of these when they apply, so callers test
// them with [errors.Is]. A call that fails with any of them has written nothing and emitted no
// event.
var (
	// ErrCapacity: the tenant already holds MaxEntries live entries and the key is new.
	ErrCapacity = errors.New("ephemeral: tenant is at capacity")
	// ErrPayloadTooLarge: the encoded value is longer than MaxPayloadBytes.
	ErrPayloadTooLarge = errors.New("ephemeral: payload too large")
	// ErrInvalidKey: the key is empty or longer than MaxKeyBytes.
	ErrInvalidKey = errors.New("ephemeral: invalid key")
	// ErrInvalidTenant: the tenant is empty or longer than MaxTenantBytes.
	ErrInvalidTenant = errors.New("ephemeral: invalid tenant")
	// ErrInvalidID: the store ID is empty or longer than MaxIDBytes.
	ErrInvalidID = errors.New("ephemeral: invalid store id")
	// ErrInvalidTTL: the TTL is not positive (or below a millisecond, the backends' resolution).
	ErrInvalidTTL = errors.New("ephemeral: invalid ttl")
	// ErrInvalidCursor: the cursor was not produced by this library.
	ErrInvalidCursor = errors.New("ephemeral: invalid cursor")
	// ErrInvalidConfig: a store configuration or option is invalid.
	ErrInvalidConfig = errors.New("ephemeral: invalid config")
	// ErrConflict: a conditional write's condition did not hold.
	ErrConflict = errors.New("ephemeral: condition failed")
	// ErrClosed: the reader, mirror or backend was closed.
	ErrClosed = errors.New("ephemeral: closed")
	// ErrDecode: a stored value could not be decoded by the store's codec.
	ErrDecode = errors.New("ephemeral: cannot decode value")
)

// Limits on identifiers, enforced by every store.
const (
	MaxKeyBytes    = 512 // longest key, in bytes
	MaxTenantBytes = 256 // longest tenant, in bytes
	MaxIDBytes     = 256 // longest store ID, in bytes
)
