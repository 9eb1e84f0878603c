package ephemeral

import (
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// callOptions collects the per-call options of every operation.
type callOptions struct {
	tenant    string
	tenantSet bool
	ttl       time.Duration
	ttlSet    bool
	reason    string
	prefix    string
	after     string
	afterSet  bool
	quiet     bool
	cond      backend.Condition
	condCount int
	cursorErr error // of an IfCursor whose cursor does not parse
}

// UpsertOption configures one [Store.Upsert]: [WithTenant], [WithTTL], [IfNew], [IfExists],
// [IfVersion], [IfCursor].
type UpsertOption interface{ applyUpsert(*callOptions) }

// TouchOption configures one [Store.Touch] or [Store.TouchMany]: [WithTenant], [WithTTL],
// [Quiet], [IfVersion] and [IfCursor] (Touch only).
type TouchOption interface{ applyTouch(*callOptions) }

// RemoveOption configures one [Store.Remove]: [WithTenant], [WithReason], [IfVersion],
// [IfCursor].
type RemoveOption interface{ applyRemove(*callOptions) }

// GetOption configures one [Store.Get]: [WithTenant].
type GetOption interface{ applyGet(*callOptions) }

// SnapshotOption configures one [Store.Snapshot]: [WithTenant], [WithPrefix].
type SnapshotOption interface{ applySnapshot(*callOptions) }

// ReaderOption configures one [Store.Reader]: [WithTenant], [WithPrefix],
// [After].
type ReaderOption interface{ applyReader(*callOptions) }

// TenantOption selects the tenant of one call; see [WithTenant].
type TenantOption string

// WithTenant makes one call (or a mirror) work on tenant t instead of the store's default
// tenant. The tenant must have 1 to [MaxTenantBytes] bytes: an empty one is an error wrapping
// [ErrInvalidTenant], never the default tenant, so that a tenant missing from request data does
// not silently share the default one.
func WithTenant(t string) TenantOption { return TenantOption(t) }

func (o TenantOption) set(c *callOptions)           { c.tenant, c.tenantSet = string(o), true }
func (o TenantOption) applyUpsert(c *callOptions)   { o.set(c) }
func (o TenantOption) applyTouch(c *callOptions)    { o.set(c) }
func (o TenantOption) applyRemove(c *callOptions)   { o.set(c) }
func (o TenantOption) applyGet(c *callOptions)      { o.set(c) }
func (o TenantOption) applySnapshot(c *callOptions) { o.set(c) }
func (o TenantOption) applyReader(c *callOptions)   { o.set(c) }

// TTLOption sets the time-to-live of one upsert or touch; see [WithTTL].
type TTLOption time.Duration

// WithTTL makes one upsert or touch use ttl instead of the store's default TTL. The TTL must be
// positive; it is rounded up to a whole millisecond.
func WithTTL(ttl time.Duration) TTLOption { return TTLOption(ttl) }

func (o TTLOption) applyUpsert(c *callOptions) { c.ttl, c.ttlSet = time.Duration(o), true }
func (o TTLOption) applyTouch(c *callOptions)  { c.ttl, c.ttlSet = time.Duration(o), true }

// ReasonOption gives the reason of one remove; see [WithReason].
type ReasonOption string

// WithReason sets the reason carried by the delete event of one [Store.Remove] (at most
// [MaxReasonBytes]).
func WithReason(reason string) ReasonOption { return ReasonOption(reason) }

func (o ReasonOption) applyRemove(c *callOptions) { c.reason = string(o) }

// PrefixOption restricts a snapshot or reader to keys with a prefix; see [WithPrefix].
type PrefixOption string

// WithPrefix restricts a snapshot or a reader to the keys that start with prefix (byte-wise).
// A reader's cursor still advances over the events it filters out.
func WithPrefix(prefix string) PrefixOption { return PrefixOption(prefix) }

func (o PrefixOption) applySnapshot(c *callOptions) { c.prefix = string(o) }
func (o PrefixOption) applyReader(c *callOptions)   { c.prefix = string(o) }

// AfterOption starts a reader at a cursor; see [After].
type AfterOption string

// After starts a reader after cursor, a Cursor of a [Snapshot] or an [Event], instead of at
// the moment the reader is created.
func After(cursor string) AfterOption { return AfterOption(cursor) }

func (o AfterOption) applyReader(c *callOptions) { c.after, c.afterSet = string(o), true }

// QuietOption makes a touch quiet; see [Quiet].
type QuietOption struct{}

// Quiet makes a touch extend the expiry only: no event, no new version, UpdatedAt unchanged.
// It is the cheap heartbeat: readers do not see it, but the entry lives on.
func Quiet() QuietOption { return QuietOption{} }

func (QuietOption) applyTouch(c *callOptions) { c.quiet = true }

// CondOption makes a write conditional; see [IfNew], [IfExists], [IfVersion], [IfCursor]. At
// most one condition may be given per call.
type CondOption backend.Condition

// IfNew makes an upsert fail with a [ConflictError] unless the key is not live.
func IfNew() CondOption { return CondOption{Kind: backend.CondIfNew} }

// IfExists makes an upsert fail with a [ConflictError] unless the key is live.
func IfExists() CondOption { return CondOption{Kind: backend.CondIfExists} }

// IfVersion makes an upsert, touch or remove fail with a [ConflictError] unless the key is live
// at version v.
func IfVersion(v uint64) VersionOption {
	return VersionOption{Kind: backend.CondIfVersion, Version: v}
}

func (o CondOption) applyUpsert(c *callOptions) { c.setCond(backend.Condition(o)) }

// VersionOption makes a write conditional on the key's version; see [IfVersion].
type VersionOption backend.Condition

func (o VersionOption) applyUpsert(c *callOptions) { c.setCond(backend.Condition(o)) }
func (o VersionOption) applyTouch(c *callOptions)  { c.setCond(backend.Condition(o)) }
func (o VersionOption) applyRemove(c *callOptions) { c.setCond(backend.Condition(o)) }

// CursorOption makes a write conditional on the key's epoch and version; see [IfCursor].
type CursorOption string

// IfCursor makes an upsert, touch or remove fail with a [ConflictError] unless the key is live
// at the version and in the epoch of cursor, the text "<epoch>-<version>" of an entry's Epoch
// and Version (a [Event.Cursor] of an upsert or touch event is one too). Unlike [IfVersion] it
// cannot be fooled by the tenant's state being made anew, when versions restart at 1 under a
// new epoch: (Epoch, Version) names one write for the tenant's whole life, which makes it a
// fencing token (package lock uses it).
//
// Epochs order by the time the tenant's state was created, on the backend's clock (the server's
// clock on Redis), and then as strings: tokens order by (epoch, version). Two states created in
// the same millisecond, or on a clock that went back (a Redis server restarted on another
// machine), do not order; epochs of the older form (16 random hex digits) have no order.
//
// A cursor that does not parse fails the call with [ErrInvalidCursor].
func IfCursor(cursor string) CursorOption { return CursorOption(cursor) }

func (o CursorOption) set(c *callOptions) {
	cur, err := backend.ParseCursor(string(o))
	if err != nil {
		c.cursorErr = err
	}
	c.setCond(backend.Condition{Kind: backend.CondIfVersion, Version: cur.Seq, Epoch: cur.Epoch})
}

func (o CursorOption) applyUpsert(c *callOptions) { o.set(c) }
func (o CursorOption) applyTouch(c *callOptions)  { o.set(c) }
func (o CursorOption) applyRemove(c *callOptions) { o.set(c) }

func (c *callOptions) setCond(cond backend.Condition) {
	c.cond = cond
	c.condCount++
}

// condErr returns the error of the call's conditions, if any.
func (c *callOptions) condErr() error {
	if c.cursorErr != nil {
		return c.cursorErr
	}
	if c.condCount > 1 {
		return errConditions
	}
	return nil
}
