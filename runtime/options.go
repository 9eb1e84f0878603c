package runtime

import "time"

// callOptions collects the per-call options of every operation.
type callOptions struct {
	tenant    string
	ttl       time.Duration
	ttlSet    bool
	reason    string
	prefix    string
	after     string
	afterSet  bool
	quiet     bool
	cond      Condition
	condCount int
}

// UpsertOption configures one [Store.Upsert]: [WithTenant], [WithTTL], [IfNew], [IfExists],
// [IfVersion].
type UpsertOption interface{ applyUpsert(*callOptions) }

// TouchOption configures one [Store.Touch]: [WithTenant], [WithTTL], [Quiet], [IfVersion].
type TouchOption interface{ applyTouch(*callOptions) }

// RemoveOption configures one [Store.Remove]: [WithTenant], [WithReason], [IfVersion].
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

// WithTenant makes one call work on tenant t instead of the store's default tenant.
func WithTenant(t string) TenantOption { return TenantOption(t) }

func (o TenantOption) applyUpsert(c *callOptions)   { c.tenant = string(o) }
func (o TenantOption) applyTouch(c *callOptions)    { c.tenant = string(o) }
func (o TenantOption) applyRemove(c *callOptions)   { c.tenant = string(o) }
func (o TenantOption) applyGet(c *callOptions)      { c.tenant = string(o) }
func (o TenantOption) applySnapshot(c *callOptions) { c.tenant = string(o) }
func (o TenantOption) applyReader(c *callOptions)   { c.tenant = string(o) }

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

// MaxReasonBytes is the longest reason [WithReason] accepts.
const MaxReasonBytes = 1024

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

// CondOption makes a write conditional; see [IfNew], [IfExists], [IfVersion]. At most one
// condition may be given per call.
type CondOption Condition

// IfNew makes an upsert fail with [ErrConflict] unless the key is not live.
func IfNew() CondOption { return CondOption{Kind: CondIfNew} }

// IfExists makes an upsert fail with [ErrConflict] unless the key is live.
func IfExists() CondOption { return CondOption{Kind: CondIfExists} }

// IfVersion makes an upsert, touch or remove fail with [ErrConflict] unless the key is live
// at version v.
func IfVersion(v uint64) VersionOption { return VersionOption{Kind: CondIfVersion, Version: v} }

func (o CondOption) applyUpsert(c *callOptions) { c.cond = Condition(o); c.condCount++ }

// VersionOption makes a write conditional on the key's version; see [IfVersion].
type VersionOption Condition

func (o VersionOption) applyUpsert(c *callOptions) { c.cond = Condition(o); c.condCount++ }
func (o VersionOption) applyTouch(c *callOptions)  { c.cond = Condition(o); c.condCount++ }
func (o VersionOption) applyRemove(c *callOptions) { c.cond = Condition(o); c.condCount++ }
