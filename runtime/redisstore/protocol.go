package redisstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// This file is the protocol between the Go side and the scripts in lua/: the keys and
// arguments each script takes, the codes and names both sides use, the stored formats, and what
// each script returns. Go is its one source: the scripts name the constants below through a
// prelude of Lua locals (see luaConstants), and each script has here one argument builder and
// one reply decoder, called together by its run function.

// The KEYS of every script, in order: the indexes into the list tenantKeys returns (in Lua,
// KEY_STATE and so on count from 1).
const (
	keyState  = iota // hash: the entries and the tenant's meta
	keyExp           // sorted set: key -> expiry
	keyEvents        // stream of the events
	numKeys
)

// Fields of the state hash. An entry's field is entryPrefix followed by its key; the others
// are the tenant's meta.
const (
	entryPrefix = "k"
	metaEpoch   = "#epoch" // the epoch
	metaSeq     = "#seq"   // the last version
	metaDue     = "#due"   // no expiry is earlier
	metaTrim    = "#trim"  // no event is droppable by retention before
	metaKexp    = "#kexp"  // the Redis expiry of the tenant's state hash and expiry set
	metaSexp    = "#sexp"  // the Redis expiry of the tenant's stream: a retention after its last event
	// metaAt is the server's time (ms) of the call that made the last version: the At of its
	// events. With the version it names a point of the tenant's timeline, which a version
	// alone does not after a failover to a replica that lacked the last writes (the new master
	// issues the lost versions again, with other events).
	metaAt = "#at"

	// The readers that watch the tenant, for the writes to tell whether a notice is needed (see
	// the package doc, "Notices"): metaWatcher is the watcher of a backend, until metaWatched
	// (ms); metaShared, until when (ms) backends other than metaWatcher's watch too.
	metaWatcher = "#w"
	metaWatched = "#wu"
	metaShared  = "#ws"
)

// Condition codes, the scripts' form of a [backend.CondKind].
const (
	condNone      = "0"
	condIfNew     = "1"
	condIfExists  = "2"
	condIfVersion = "3"
)

// condCodes maps a condition kind to its code.
var condCodes = [...]string{
	backend.CondNone:      condNone,
	backend.CondIfNew:     condIfNew,
	backend.CondIfExists:  condIfExists,
	backend.CondIfVersion: condIfVersion,
}

// Event kinds as the stream and the notices encode them.
const (
	kindUpsert = "u"
	kindTouch  = "t"
	kindDelete = "d"
	kindExpire = "x"
)

// Field names of a stream entry, in the order in which the scripts write them (entryFields):
// the epoch and the time of its events, and the events, encoded as in a notice (see
// parseNotice). Its ID is "<v>-<n-1>" for the n events of versions v-n+1 to v: one entry per
// script call, whatever its number of events.
const (
	fieldEpoch  = "p"
	fieldAt     = "a" // the time of the changes
	fieldEvents = "e"
)

// entryFields is the order of a stream entry's fields.
var entryFields = [...]string{fieldEpoch, fieldAt, fieldEvents}

// fieldPos returns the position (from 1, as in Lua) of the value of field name, one of
// entryFields, in an entry's flat field list as XRANGE returns it.
func fieldPos(name string) int { return 2*slices.Index(entryFields[:], name) + 2 }

// Reply statuses.
const (
	statusOK       = 1  // written (remove: the key was live and is removed)
	statusNotLive  = 0  // touch, remove: the key is not live; nothing was written
	statusConflict = -1 // the condition failed; the reply has the key's version, 0 when not live
	statusCapacity = -2 // upsert: a new key in a full tenant
)

// Script arguments, by their position in ARGV (from 1). Every script but get starts with an
// epoch candidate (the epoch of the tenant's meta if the script has to make it) and the event
// retention in milliseconds (see setHead); write and tick then take the most events kept.
const (
	argEpoch     = 1
	argRetention = 2
	argMaxEvents = 3
)

// Arguments of write.lua: the three above, the most live entries, the epoch the client knows
// the tenant by ("" when none: see decodeWrite), the writing backend's watcher (see
// Backend.watcherID), then writeArgsPerOp per operation after the first writeHeadArgs, at the
// offsets opCode to opCondEpoch.
const (
	writeMaxEntries = 4
	writeKnownEpoch = 5
	writeWatcher    = 6
	writeHeadArgs   = 6
	writeArgsPerOp  = 7

	opCode        = 1 // one of the operation codes below
	opKey         = 2
	opValue       = 3 // the upsert's value, the remove's reason
	opTTL         = 4 // ms; 0 for a remove
	opCond        = 5 // a condition code
	opCondVersion = 6
	opCondEpoch   = 7 // the condition's epoch, "" for any

	writeReplyPerOp = 5 // integers of the reply per operation, before the batch's
	writeReplyBatch = 3 // integers of the reply after the operations': see writeTail
	epochChunk      = 6 // bytes of the epoch per integer of the reply (a Lua number holds 53 bits)
)

// write.lua packs the epoch's bytes exactly epochChunk at a time.
var _ = [1]struct{}{}[epochChunk-6]

// epochTimeDigits is the length of the time part of an epoch of [backend.NewEpoch]: a script
// that creates a tenant's meta writes the server's time there and keeps the rest of the
// client's candidate, so that epochs order by the server's clock.
const epochTimeDigits = 12

// Operation codes of write.lua. The codes, as the condition codes, are strings, which Lua
// compares without converting them.
const (
	opUpsert     = "1"
	opTouch      = "2"
	opTouchQuiet = "3"
	opRemove     = "4"
)

// Arguments of get.lua.
const (
	getKey  = 1
	getArgs = 1
)

// Arguments of read.lua, after argEpoch and argRetention.
const (
	readCursorEpoch = 3
	readCursorSeq   = 4
	readCount       = 5 // the most stream entries to return
	readArgs        = 5
)

// Arguments of open.lua, after argEpoch and argRetention: the backend's watcher and how long
// (ms) its registration lasts (see Backend.watcherID).
const (
	openWatcher  = 3
	openWatchFor = 4
	openArgs     = 4
)

// Arguments of tick.lua: argEpoch, argRetention, argMaxEvents and the ticking backend's
// watcher (see Backend.watcherID).
const (
	tickWatcher = 4
	tickArgs    = 4
)

// noticeMax is the most bytes of events a notice carries (see parseNotice): a script whose
// events take more publishes a notice without them.
const noticeMax = 64 << 10

// Bounds of the work of one script call, and a time.
const (
	reconcileBatch = 100 // most due entries one call expires
	// maxCallEvents is the most events one call adds, its stream entry: the due entries it
	// expires, and for each write of a batch an expiry of its key and its own event. Reads
	// bound the versions they ask for with it, so that a read of count entries returns about
	// count events, not count times a batch.
	maxCallEvents = reconcileBatch + 2*maxBatch
	trimScan      = 100              // most old entries one call inspects when it trims by retention
	never         = 9000000000000000 // META_DUE when nothing is live
)

// What the scripts accept of what they read (see lua/check.lua), and the error reply of what
// they do not: corruptCode, the index of the tenant's key (in Lua, from 1), the field (a state
// hash field, a member of the expiry set) and the first maxQuoted bytes of its bad value, both
// in hex, and the value's length.
const (
	maxDigits = 16 // digits of a number: a version, a time, a meta field
	// maxNumber is the largest number of maxDigits digits the scripts take, the largest a
	// Lua number (a double) holds exactly: past it, a version read and added to would repeat
	// or go back.
	maxNumber   = 1<<53 - 1
	maxQuoted   = 64 // bytes of a bad value the error shows
	corruptCode = "EPHEMERAL_CORRUPT"
)

// luaConstants are the constants the Lua sources use, under their Lua names. Every script
// starts with those it names, as Lua locals (see prelude).
var luaConstants = []struct {
	name  string
	value any // an int or a string
}{
	{"KEY_STATE", keyState + 1},
	{"KEY_EXP", keyExp + 1},
	{"KEY_EVENTS", keyEvents + 1},
	{"ENTRY_PREFIX", entryPrefix},
	{"META_EPOCH", metaEpoch},
	{"META_SEQ", metaSeq},
	{"META_DUE", metaDue},
	{"META_TRIM", metaTrim},
	{"META_KEXP", metaKexp},
	{"META_SEXP", metaSexp},
	{"META_AT", metaAt},
	{"META_WATCHER", metaWatcher},
	{"META_WATCHED", metaWatched},
	{"META_SHARED", metaShared},
	{"COND_NONE", condNone},
	{"COND_IF_NEW", condIfNew},
	{"COND_IF_EXISTS", condIfExists},
	{"COND_IF_VERSION", condIfVersion},
	{"KIND_UPSERT", kindUpsert},
	{"KIND_TOUCH", kindTouch},
	{"KIND_DELETE", kindDelete},
	{"KIND_EXPIRE", kindExpire},
	{"FIELD_EPOCH", fieldEpoch},
	{"FIELD_AT", fieldAt},
	{"FIELD_EVENTS", fieldEvents},
	{"FIELD_AT_POS", fieldPos(fieldAt)},
	{"STATUS_OK", statusOK},
	{"STATUS_NOT_LIVE", statusNotLive},
	{"STATUS_CONFLICT", statusConflict},
	{"STATUS_CAPACITY", statusCapacity},
	{"ARG_EPOCH", argEpoch},
	{"ARG_RETENTION", argRetention},
	{"ARG_MAX_EVENTS", argMaxEvents},
	{"WRITE_MAX_ENTRIES", writeMaxEntries},
	{"WRITE_KNOWN_EPOCH", writeKnownEpoch},
	{"WRITE_WATCHER", writeWatcher},
	{"OPEN_WATCHER", openWatcher},
	{"OPEN_WATCH_FOR", openWatchFor},
	{"TICK_WATCHER", tickWatcher},
	{"WRITE_HEAD_ARGS", writeHeadArgs},
	{"WRITE_ARGS_PER_OP", writeArgsPerOp},
	{"OP_CODE", opCode},
	{"OP_KEY", opKey},
	{"OP_VALUE", opValue},
	{"OP_TTL", opTTL},
	{"OP_COND", opCond},
	{"OP_COND_VERSION", opCondVersion},
	{"OP_COND_EPOCH", opCondEpoch},
	{"EPOCH_CHUNK", epochChunk},
	{"EPOCH_TIME_DIGITS", epochTimeDigits},
	{"OP_UPSERT", opUpsert},
	{"OP_TOUCH", opTouch},
	{"OP_TOUCH_QUIET", opTouchQuiet},
	{"OP_REMOVE", opRemove},
	{"GET_KEY", getKey},
	{"READ_CURSOR_EPOCH", readCursorEpoch},
	{"READ_CURSOR_SEQ", readCursorSeq},
	{"READ_COUNT", readCount},
	{"RECONCILE_BATCH", reconcileBatch},
	{"MAX_CALL_EVENTS", maxCallEvents},
	{"TRIM_SCAN", trimScan},
	{"NEVER", never},
	{"NOTICE_MAX", noticeMax},
	{"MAX_DIGITS", maxDigits},
	{"MAX_NUMBER", maxNumber},
	{"MAX_EPOCH", backend.MaxEpochBytes},
	{"QUOTE_MAX", maxQuoted},
	{"CORRUPT", corruptCode},
}

// prelude returns the Lua locals of the luaConstants that src names: a script defines only
// what it uses, since every call runs the whole script. The strings are plain ASCII, so Go's
// quoting is Lua's.
func prelude(src string) string {
	var b strings.Builder
	b.WriteString("-- The protocol's constants, generated from protocol.go.\n")
	for _, c := range luaConstants {
		if !regexp.MustCompile(`\b` + c.name + `\b`).MatchString(src) {
			continue
		}
		switch v := c.value.(type) {
		case int:
			fmt.Fprintf(&b, "local %s = %d\n", c.name, v)
		case string:
			fmt.Fprintf(&b, "local %s = %q\n", c.name, v)
		default:
			panic(fmt.Sprintf("redisstore: Lua constant %s of type %T", c.name, v))
		}
	}
	return b.String()
}

// args holds a script's arguments by their ARGV positions, which count from 1.
type args []any

func (a args) set(pos int, v any) { a[pos-1] = v }

// setHead sets in a the two arguments that every script but get.lua starts with: argEpoch, the
// epoch of a tenant that has none yet, and argRetention.
func setHead(a args, l backend.Limits) {
	a.set(argEpoch, backend.NewEpoch(time.Now()))
	a.set(argRetention, l.EventRetention.Milliseconds())
}

// writeOp is one operation of a batch of write.lua: an upsert, a touch or a remove.
type writeOp struct {
	code  string // opUpsert, opTouch, opTouchQuiet or opRemove
	key   string
	value []byte // the upsert's value, the remove's reason
	ttl   time.Duration
	cond  backend.Condition
}

// writeResult is the outcome of one operation of a batch.
type writeResult struct {
	ok                              bool // upsert: written; touch, remove: the key was live
	version                         uint64
	epoch                           string // of the tenant, when the script ran
	createdAt, updatedAt, expiresAt int64
	err                             error // a ConflictError, ErrCapacity or a Redis error
}

// runInts runs s with cmd, a command of scriptCmd whose reply is a list of integers. Unlike
// runCmd it reads the reply into integers directly, without making an interface of each.
func (sc *scripter) runInts(ctx context.Context, s *script, cmd []any) ([]int64, error) {
	return sc.run(ctx, s, cmd, newIntsCmd).(onceIntsCmd).Result()
}

// newIntsCmd returns the command of a write script's call, whose reply is a list of integers,
// routed by its first key in a cluster: an onceIntsCmd.
func newIntsCmd(ctx context.Context, cmd []any) redis.Cmder {
	c := redis.NewIntSliceCmd(ctx, cmd...)
	c.SetFirstKeyPos(3)
	return onceIntsCmd{c}
}

// onceIntsCmd is a redis.IntSliceCmd that go-redis does not send again once it may have reached
// the server. By default go-redis sends a command again when its connection fails or its read
// times out after it was written (MaxRetries): a write that ran and whose reply was lost would
// run twice, with two versions and two events, and a conditional one would fail on its own
// first run (an IfNew upsert, an IfCursor release). Its caller gets the error instead, after
// which the write may or may not have been applied, as with any Redis call. (A command go-redis
// could not write at all is still sent again, and so is one that the server refused before it
// ran anything, for now: see NoRetry.)
type onceIntsCmd struct{ *redis.IntSliceCmd }

// NoRetry implements [redis.Cmder]: go-redis may send the call again, with its backoff and
// retry count, only after the server refused it for now before it ran (see refusedForNow): a
// cluster's slot whose keys are split between two nodes in a migration (TRYAGAIN), the
// cluster down, a node loading its data or that became a replica. go-redis's cluster client
// asks after the reply, and so retries those (up to MaxRedirects, 3 by default: a few hundred
// ms; before, a write failed at once on each, thousands of errors in the seconds of a
// migration); its plain client asks before, and a standalone server's refusals fail at once,
// as before.
func (c onceIntsCmd) NoRetry() bool { return !refusedForNow(c.Err()) }

// scriptError returns the error of a script call (or another call on a tenant's keys): a
// corrupt-data reply of lua/check.lua, a key of the wrong type, or an XADD refused because the
// stream's last ID is ahead of the tenant's version (junk added to the stream), as an error
// wrapping backend.ErrCorrupt; other errors as they are. None of these replies comes after a
// write of a script.
func scriptError(err error) error {
	var re redis.Error
	if !errors.As(err, &re) {
		return err
	}
	msg := re.Error()
	if strings.Contains(msg, "equal or smaller than the target stream top item") {
		return fmt.Errorf("%w: the events stream holds an ID ahead of the tenant's version (delete the stream to recover)", backend.ErrCorrupt)
	}
	if strings.Contains(msg, "WRONGTYPE") {
		return fmt.Errorf("%w: a key of the tenant has the wrong type (delete it to recover)", backend.ErrCorrupt)
	}
	rest, ok := strings.CutPrefix(msg, corruptCode+" ")
	if !ok {
		return err
	}
	parts := strings.Split(rest, " ") // the hex of an empty field or value is empty
	if len(parts) != 4 {
		return fmt.Errorf("%w: %s", backend.ErrCorrupt, backend.Quote(rest))
	}
	k, err1 := strconv.Atoi(parts[0])
	field, err2 := hex.DecodeString(parts[1])
	value, err3 := hex.DecodeString(parts[2])
	n, err4 := strconv.Atoi(parts[3])
	if err := errors.Join(err1, err2, err3, err4); err != nil || k < 1 || k > numKeys {
		return fmt.Errorf("%w: %s", backend.ErrCorrupt, backend.Quote(rest))
	}
	return corruptError(k-1, string(field), string(value), n)
}

// wrongType returns the error of a key of the tenant, keys[k], of the wrong type, as an error
// wrapping backend.ErrCorrupt that names it, when err is the error of a command on it that says
// so (WRONGTYPE); nil otherwise. (The scripts check the types of the keys they read, and say
// which is wrong: see check_type in lua/check.lua.)
func wrongType(err error, k int) error {
	if !redis.HasErrorPrefix(err, "WRONGTYPE") {
		return nil
	}
	want := [numKeys]string{keyState: "hash", keyExp: "sorted set", keyEvents: "stream"}[k]
	return fmt.Errorf("%w: the tenant's %s key is not a %s (delete it to recover)", backend.ErrCorrupt, keySuffixes[k], want)
}

// corruptError returns the error of a bad value of a field of the tenant's key keys[k]: value,
// or its first bytes when it is n bytes long.
func corruptError(k int, field, value string, n int) error {
	what := [numKeys]string{keyState: "state hash field", keyExp: "expiry set member", keyEvents: "events stream entry"}[k]
	if field == "" && k != keyState {
		return fmt.Errorf("%w: the tenant's %s key is a %s (delete it to recover)", backend.ErrCorrupt, keySuffixes[k], backend.Quote(value))
	}
	quoted := backend.Quote(value)
	if n > len(value) {
		quoted = strconv.Quote(value) + "... (" + strconv.Itoa(n) + " bytes)"
	}
	return fmt.Errorf("%w: %s %s: %s", backend.ErrCorrupt, what, backend.Quote(field), quoted)
}

// writeCmd builds the command that runs write.lua on ops, in a tenant the client knows by
// the epoch known (or ""), for the backend whose watcher is watcher (or "", a writer that
// watches nothing), and its arguments as args.
func writeCmd(keys []string, known, watcher string, l backend.Limits, ops []writeOp) ([]any, args) {
	cmd, a := scriptCmd(keys, writeHeadArgs+writeArgsPerOp*len(ops))
	setHead(a, l)
	a.set(argMaxEvents, l.MaxEvents)
	a.set(writeMaxEntries, l.MaxEntries)
	a.set(writeKnownEpoch, known)
	a.set(writeWatcher, watcher)
	for i, op := range ops {
		base := writeHeadArgs + i*writeArgsPerOp
		a.set(base+opCode, op.code)
		a.set(base+opKey, op.key)
		a.set(base+opValue, op.value)
		a.set(base+opTTL, op.ttl.Milliseconds())
		a.set(base+opCond, condCodes[op.cond.Kind])
		a.set(base+opCondVersion, op.cond.Version)
		a.set(base+opCondEpoch, op.cond.Epoch)
	}
	return cmd, a
}

// runWrite applies ops, in order, in one call of write.lua, in a tenant the client knows by the
// epoch known (or ""), as a writer that watches nothing. Its error is that of the call; the
// error of each operation is in its result.
func runWrite(ctx context.Context, sc *scripter, keys []string, known string, l backend.Limits, ops []writeOp) ([]writeResult, error) {
	cmd, _ := writeCmd(keys, known, "", l, ops)
	res, err := sc.runInts(ctx, writeScript, cmd)
	out, _, err := writeReply(res, err, known, l, ops)
	return out, err
}

// writeReply returns the results of a call of write.lua with ops that said the client knows
// the tenant by the epoch known, from its reply res or its error err.
func writeReply(res []int64, err error, known string, l backend.Limits, ops []writeOp) ([]writeResult, writeTail, error) {
	if err != nil {
		return nil, writeTail{}, scriptError(err)
	}
	return decodeWrite(res, known, l, ops)
}

// writeTail is what a call of write.lua tells of the tenant after its batch: the first version
// the batch made (last+1 when none), the tenant's last version and how long until its next
// expiry (ms, -1 when none), what its notice tells (see the package doc, "Notices"), for the
// writing backend's pump, to which no notice of the call may come.
type writeTail struct {
	first, last uint64
	dueIn       int64
}

// decodeWrite decodes the reply of write.lua to a call that said the client knows the tenant
// by the epoch known: writeReplyPerOp integers per operation, the writeReplyBatch of the
// writeTail, then the tenant's epoch, or nothing when it is known (and not ""). Encoding the
// epoch takes the script about a twentieth of a single write's time, and decoding it takes
// the client an allocation.
func decodeWrite(res []int64, known string, l backend.Limits, ops []writeOp) ([]writeResult, writeTail, error) {
	n := writeReplyPerOp*len(ops) + writeReplyBatch
	if len(res) < n || len(res) == n && known == "" || res[n-3] < 1 || res[n-2] < res[n-3]-1 || res[n-1] < -1 {
		return nil, writeTail{}, fmt.Errorf("unexpected reply of %d integers for %d operations", len(res), len(ops))
	}
	tail := writeTail{first: uint64(res[n-3]), last: uint64(res[n-2]), dueIn: res[n-1]}
	epoch, ok := known, true
	if len(res) > n {
		epoch, ok = decodeEpoch(res[n:])
	}
	if !ok {
		return nil, writeTail{}, fmt.Errorf("unexpected epoch %v in the reply", res[n:])
	}
	out := make([]writeResult, len(ops))
	for i, op := range ops {
		r := res[writeReplyPerOp*i:]
		out[i].epoch = epoch
		switch {
		case r[0] == statusOK:
			out[i] = writeResult{ok: true, version: uint64(r[1]), epoch: epoch, createdAt: r[2], updatedAt: r[3], expiresAt: r[4]}
		case r[0] == statusNotLive && op.code != opUpsert:
		case r[0] == statusConflict:
			out[i].err = conflictError(op.key, op.cond, epoch, r[1])
		case r[0] == statusCapacity && op.code == opUpsert:
			out[i].err = backend.CapacityError(op.key, l.MaxEntries)
		default:
			return nil, writeTail{}, fmt.Errorf("unexpected status %d of operation %s on %q", r[0], op.code, op.key)
		}
	}
	return out, tail, nil
}

// decodeEpoch decodes an epoch that write.lua returns as integers, epochChunk bytes to each,
// big-endian; the last may hold fewer (a valid epoch has no zero byte).
func decodeEpoch(chunks []int64) (string, bool) {
	if len(chunks)*epochChunk > backend.MaxEpochBytes+epochChunk {
		return "", false
	}
	var buf [backend.MaxEpochBytes + epochChunk]byte
	b := buf[:0]
	for _, c := range chunks {
		for shift := 8 * (epochChunk - 1); shift >= 0; shift -= 8 {
			if x := byte(c >> shift); x != 0 {
				b = append(b, x)
			}
		}
	}
	e := string(b)
	return e, backend.ValidEpoch(e)
}

// conflictError returns the error of a write to key whose condition c failed in a script that
// found the key at version (0 when it was not live; versions start at 1) in a tenant of epoch:
// the *backend.ConflictError of [backend.Condition.Check], as every backend returns it.
func conflictError(key string, c backend.Condition, epoch string, version int64) error {
	if err := c.Check(key, version > 0, epoch, uint64(version)); err != nil {
		return err
	}
	return fmt.Errorf("redisstore: a script found a conflict of %+v for key %q at version %d, the Go side none", c, key, version)
}

// runGet runs get.lua.
func runGet(ctx context.Context, sc *scripter, keys []string, key string) (backend.Entry, bool, error) {
	// The state key alone, which get.lua reads: in a cluster, a slot on the move refuses a call
	// of several keys (TRYAGAIN) while they are split between two nodes.
	cmd, a := scriptCmd(keys[keyState:keyState+1], getArgs)
	a.set(getKey, key)
	res, err := sc.runCmd(ctx, getScript, cmd).StringSlice()
	if errors.Is(err, redis.Nil) {
		return backend.Entry{}, false, nil
	}
	if err != nil {
		return backend.Entry{}, false, fmt.Errorf("redisstore: get %s: %w", backend.Quote(key), scriptError(err))
	}
	if len(res) != 2 || !backend.ValidEpoch(res[1]) {
		// get.lua checked the epoch it found: there was none beside the entry.
		return backend.Entry{}, false, fmt.Errorf("redisstore: get %s: %w: an entry without the tenant's epoch", backend.Quote(key), backend.ErrCorrupt)
	}
	e, err := parseStored(key, res[0])
	if err != nil {
		return backend.Entry{}, false, err
	}
	e.Epoch = res[1]
	return e, true, nil
}

// readResult is the reply of read.lua.
type readResult struct {
	epoch  string
	head   uint64 // the tenant's last version
	first  uint64 // the oldest version a reader may read; head+1 when there is none
	now    int64
	events []backend.Event
	due    int64 // no expiry is earlier; never when none is
	at     int64 // the time of the call that made head (metaAt); 0 if unknown
}

// runRead runs read.lua: the tenant's position and the events of up to count stream entries
// after pos, about count events (see maxCallEvents). The stream trims whole entries, so it may
// hold a few versions before the last l.MaxEvents; those count as gone, as on every backend:
// first is never before that window.
func runRead(ctx context.Context, sc *scripter, keys []string, l backend.Limits, pos backend.Cursor, count int) (readResult, error) {
	cmd, a := scriptCmd(keys, readArgs)
	setHead(a, l)
	a.set(readCursorEpoch, pos.Epoch)
	a.set(readCursorSeq, pos.Seq)
	a.set(readCount, count)
	res, err := sc.runCmd(ctx, readScript, cmd).Slice()
	if err != nil {
		return readResult{}, scriptError(err)
	}
	r, err := decodeRead(res)
	if n := uint64(l.MaxEvents); err == nil && r.head > n {
		r.first = max(r.first, r.head-n+1)
	}
	return r, err
}

// decodeRead decodes the reply of read.lua: {epoch, head, first, now, entries, due}.
func decodeRead(res []any) (readResult, error) {
	if len(res) != 6 {
		return readResult{}, fmt.Errorf("redisstore: read: %w reply %v", errMalformed, res)
	}
	epoch, head, now, ok := decodePosition(res[0], res[1], res[3])
	first, ok1 := res[2].(int64)
	raw, ok2 := res[4].([]any)
	due, ok3 := res[5].(int64)
	if !ok || !ok1 || !ok2 || !ok3 || first < 1 {
		return readResult{}, fmt.Errorf("redisstore: read: %w reply %v", errMalformed, res)
	}
	first = min(first, int64(head)+1) // an oldest entry beyond the head is junk
	events, err := parseEntries(raw)
	if err != nil {
		return readResult{}, err
	}
	return readResult{epoch: epoch, head: head, first: uint64(first), now: now, events: events, due: due}, nil
}

// readTail reads the tenant's epoch, last version and due time, and up to count stream entries
// with events after version after, up to the version after+count+maxCallEvents (about count
// events however large the entries), in one MULTI/EXEC transaction (HMGET, XRANGE and TIME): a
// pump's read, as atomic as read.lua and lighter for the server. When the meta or its due time
// is missing, it runs read.lua, which makes the meta or finds the earliest expiry. The events
// are those of the tenant's epoch, from the entry that holds version after on (the caller
// checks that its event at after is Redis's: see otherHistory), so the first may be at or
// before after; the caller compares the epoch with its own. An entry that is no event (junk) is
// returned as parseEntry returns it.
func readTail(ctx context.Context, sc *scripter, keys []string, l backend.Limits, epoch string, after uint64, count int) (readResult, error) {
	var meta *redis.SliceCmd
	var tail *redis.XMessageSliceCmd
	var now *redis.TimeCmd
	cmds, err := sc.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HMGet(ctx, keys[keyState], metaEpoch, metaSeq, metaDue, metaAt)
		until := strconv.FormatUint(after+uint64(count)+maxCallEvents, 10) // as in read.lua
		// From the entry of version after on (an entry's ID is its last version): the caller
		// checks that the event it has at after is the one Redis has.
		tail = p.XRangeN(ctx, keys[keyEvents], strconv.FormatUint(after, 10)+"-0", until, int64(count))
		now = p.Time(ctx)
		return nil
	})
	if refusedOOM(cmds) {
		return runRead(ctx, sc, keys, l, backend.Cursor{Epoch: epoch, Seq: after}, count) // flagged allow-oom
	}
	if err != nil {
		if werr := cmp.Or(wrongType(meta.Err(), keyState), wrongType(tail.Err(), keyEvents)); werr != nil {
			return readResult{}, werr
		}
		return readResult{}, txError(cmds, err)
	}
	m := meta.Val()
	e, _ := m[0].(string)
	seqText, _ := m[1].(string)
	dueText, _ := m[2].(string)
	if seqText == "" {
		seqText = "0" // no write yet
	}
	seq, err1 := strconv.ParseUint(seqText, 10, 64)
	due, err2 := strconv.ParseInt(dueText, 10, 64)
	if !backend.ValidEpoch(e) || err1 != nil || err2 != nil || len(seqText) > maxDigits || len(dueText) > maxDigits || seq > maxNumber {
		// No meta, no due time, or junk: read.lua makes the meta, finds the earliest
		// expiry, or tells what is wrong (an error wrapping backend.ErrCorrupt).
		return runRead(ctx, sc, keys, l, backend.Cursor{Epoch: epoch, Seq: after}, count)
	}
	r := readResult{epoch: e, head: seq, now: now.Val().UnixMilli(), due: due}
	if atText, _ := m[3].(string); len(atText) <= maxDigits {
		r.at, _ = strconv.ParseInt(atText, 10, 64) // 0, unknown, if absent (an older writer) or junk
	}
	if e != epoch {
		return r, nil
	}
	for _, msg := range tail.Val() {
		r.events = append(r.events, parseMessage(msg)...)
	}
	return r, nil
}

// refusedOOM reports whether the server refused a transaction of cmds because it is out of
// memory (maxmemory, noeviction): it then refuses every command queued in a MULTI, the reads
// too, which it runs when they come alone.
func refusedOOM(cmds []redis.Cmder) bool {
	return slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return redis.HasErrorPrefix(c.Err(), "OOM") })
}

// txError returns the error of a transaction of cmds that failed with err: that of the first
// command the server refused to queue, which says why, or err. (go-redis gives the other
// commands EXECABORT, which does not.)
func txError(cmds []redis.Cmder, err error) error {
	if err == nil {
		return nil
	}
	for _, c := range cmds {
		if cerr := c.Err(); cerr != nil && !redis.HasErrorPrefix(cerr, "EXECABORT") {
			return cerr
		}
	}
	return err
}

// tickResult is the reply of tick.lua; times in Unix milliseconds of the server.
type tickResult struct {
	epoch    string
	head     uint64
	now, due int64 // due is that of the meta: no expiry is earlier
	expired  int   // how many due entries the tick expired
}

// runTick runs tick.lua.
func runTick(ctx context.Context, sc *scripter, keys []string, l backend.Limits, watcher string) (tickResult, error) {
	cmd, a := scriptCmd(keys, tickArgs)
	setHead(a, l)
	a.set(argMaxEvents, l.MaxEvents)
	a.set(tickWatcher, watcher)
	res, err := sc.runCmd(ctx, tickScript, cmd).Slice()
	if err != nil {
		return tickResult{}, scriptError(err)
	}
	return decodeTick(res)
}

// decodeTick decodes the reply of tick.lua: {epoch, head, now, due, expired}.
func decodeTick(res []any) (tickResult, error) {
	if len(res) != 5 {
		return tickResult{}, fmt.Errorf("redisstore: tick: %w reply %v", errMalformed, res)
	}
	epoch, head, now, ok := decodePosition(res[0], res[1], res[2])
	due, ok1 := res[3].(int64)
	expired, ok2 := res[4].(int64)
	if !ok || !ok1 || !ok2 {
		return tickResult{}, fmt.Errorf("redisstore: tick: %w reply %v", errMalformed, res)
	}
	return tickResult{epoch: epoch, head: head, now: now, due: due, expired: int(expired)}, nil
}

// decodePosition decodes the epoch, the last version and the time that read.lua and tick.lua
// return.
func decodePosition(epoch, head, now any) (string, uint64, int64, bool) {
	e, _ := epoch.(string)
	h, ok1 := head.(int64)
	n, ok2 := now.(int64)
	return e, uint64(h), n, backend.ValidEpoch(e) && ok1 && ok2 && h >= 0
}

// errMalformed is wrapped by the errors of replies and stream entries that cannot be decoded:
// data that no retry will fix.
var errMalformed = errors.New("malformed")

// notice is a tenant's notice as the scripts publish it (see lib.lua's notify).
type notice struct {
	epoch string
	head  uint64
	dueIn int64 // ms until the next expiry; -1 when none is
	// at is the time of the call that made version head, when the call added events (the
	// notice tells it also when they are too large to carry); 0 when it is not told.
	at int64
	// events are the events the script added, of versions head-len(events)+1 to head, when
	// the notice carries them; nil when it does not, or they cannot be decoded.
	events []backend.Event
}

// parseNotice decodes the payload of a notice: "<epoch> <head> <dueIn>", and when the call
// added events, " <at>" and, when the notice carries them, the events as their stream entry
// holds them (see parseEvents). Anyone may publish on the channel: a payload whose first
// three fields are junk is not ok, and events that cannot be decoded are left out (the pump
// then reads them from the stream). The events hold no part of s.
func parseNotice(s string) (notice, bool) {
	epoch, rest, ok1 := strings.Cut(s, " ")
	headText, rest, ok2 := strings.Cut(rest, " ")
	dueText, rest, more := strings.Cut(rest, " ")
	head, err1 := strconv.ParseUint(headText, 10, 64)
	dueIn, err2 := strconv.ParseInt(dueText, 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || !backend.ValidEpoch(epoch) {
		return notice{}, false
	}
	n := notice{epoch: epoch, head: head, dueIn: dueIn}
	if more {
		if at, evs, ok := cutField(rest, ' ', false); ok {
			n.at = at
			n.events = parseEvents(evs, epoch, at, head)
		}
	}
	return n, true
}

// parseEvents decodes the events of epoch at time at whose last version is head: s is each
// event, " <kind> <n>:<key> <createdAt> <expiresAt> <n>:<value or reason>", with the times
// that the kind lacks 0 (lib.lua's event). It returns nil if s is malformed or holds no event.
// The events hold no part of s.
func parseEvents(s, epoch string, at int64, head uint64) []backend.Event {
	var evs []backend.Event
	for s != "" {
		if len(s) < 3 || s[0] != ' ' || s[2] != ' ' {
			return nil
		}
		ev := backend.Event{Epoch: epoch, At: at}
		kind := s[1]
		var key, body string
		var ok1, ok2, ok3, ok4 bool
		key, s, ok1 = cutBytes(s[3:])
		if len(s) == 0 || s[0] != ' ' {
			return nil
		}
		ev.CreatedAt, s, ok2 = cutField(s[1:], ' ', true)
		ev.ExpiresAt, s, ok3 = cutField(s, ' ', true)
		body, s, ok4 = cutBytes(s)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return nil
		}
		ev.Key = strings.Clone(key)
		switch kind {
		case kindUpsert[0]:
			ev.Kind, ev.Value = backend.EventUpsert, []byte(body)
		case kindTouch[0], kindExpire[0]:
			ev.Kind, ev.CreatedAt = backend.EventTouch, 0
			if kind == kindExpire[0] {
				ev.Kind = backend.EventExpire
			}
		case kindDelete[0]:
			ev.Kind, ev.CreatedAt, ev.ExpiresAt, ev.Reason = backend.EventDelete, 0, 0, strings.Clone(body)
		default:
			return nil
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 || uint64(len(evs)) > head {
		return nil
	}
	for i := range evs {
		evs[i].Version = head - uint64(len(evs)-1-i)
	}
	return evs
}

// cutField parses the decimal digits s starts with, at least one and at most maxDigits, up
// to sep, and returns their value and the rest of s: after sep if consume (then sep must
// follow the digits), else from sep on, or "" at the end of s.
func cutField(s string, sep byte, consume bool) (v int64, rest string, ok bool) {
	i := 0
	for ; i < len(s) && s[i] != sep; i++ {
		c := s[i]
		if c < '0' || c > '9' || i == maxDigits {
			return 0, "", false
		}
		v = v*10 + int64(c-'0')
	}
	if i == 0 || consume && i == len(s) {
		return 0, "", false
	}
	if consume {
		i++
	}
	return v, s[i:], true
}

// cutBytes decodes "<n>:" and the n bytes after it that s starts with, and returns them and
// the rest of s.
func cutBytes(s string) (b, rest string, ok bool) {
	n, s, ok := cutField(s, ':', true)
	if !ok || n > int64(len(s)) {
		return "", "", false
	}
	return s[:n], s[n:], true
}

// errNoMeta is the error of parseSnapshot for a state hash without the tenant's meta, and
// errNoState for none at all (an empty reply).
var (
	errNoMeta  = errors.New("no meta")
	errNoState = errors.New("no state")
)

// snapField is a live entry of the state hash in the bytes of an HGETALL reply: the offsets
// of its key (its field's name after entryPrefix) and of its value, and the numbers of its
// stored entry.
type snapField struct {
	key, keyEnd, value, valueEnd int
	head                         [4]int64 // version, createdAt, updatedAt, expiresAt
}

// parseSnapshot decodes a state hash, the bytes of an HGETALL reply as the server sent it (a
// RESP3 map or a RESP2 array of bulk strings), into a snapshot whose entries are dst extended
// by the live entries (expiring after now) of the keys with prefix, sorted by key; or
// errNoState (an empty reply: no hash) or errNoMeta. An error reply (WRONGTYPE) is returned as a
// [redis.Error]. The keys share one string; the values are slices of reply, each capped at its
// own end, so that appending to one cannot change another or reply, and the caller gives them
// storage of their own (see keepValues) before it reuses reply. Reading the reply's bytes
// rather than a map of strings saves a string per field and a map insert per entry; each stored
// entry is decoded as the reply is read, in its order, and only the live ones are sorted.
// The slices it works in are sc's (nil: new ones), kept for the next call.
func parseSnapshot(reply []byte, now int64, prefix string, dst []backend.Entry, sc *snapScratch) (backend.Snapshot, error) {
	r := respReader{b: reply}
	n, err := r.mapLen()
	if err != nil {
		return backend.Snapshot{}, err
	}
	if sc == nil {
		sc = new(snapScratch)
	}
	var epoch, seqText []byte
	hasEpoch := false
	fields := slices.Grow(sc.fields[:0], n)
	defer func() { sc.fields = fields[:0] }()
	keyBytes := 0
	var bad *snapField // the first malformed stored entry
	for range n {
		name, nameEnd, ok1 := r.bulk()
		value, valueEnd, ok2 := r.bulk()
		if !ok1 || !ok2 {
			return backend.Snapshot{}, r.malformed()
		}
		f := reply[name:nameEnd]
		switch {
		case len(f) >= len(entryPrefix) && string(f[:len(entryPrefix)]) == entryPrefix:
			key := f[len(entryPrefix):]
			if len(key) < len(prefix) || string(key[:len(prefix)]) != prefix {
				break
			}
			// Parsed in place, in the next slot of fields (see parseNumbers), which is given
			// back unless the entry is well-formed and live.
			fields = append(fields, snapField{})
			sf := &fields[len(fields)-1]
			skip, ok := parseNumbers(reply[value:valueEnd], &sf.head)
			if ok && sf.head[3] > now {
				sf.key, sf.keyEnd, sf.value, sf.valueEnd = name+len(entryPrefix), nameEnd, value+skip, valueEnd
				keyBytes += len(key)
				break
			}
			fields = fields[:len(fields)-1]
			if !ok && bad == nil {
				bad = &snapField{key: name + len(entryPrefix), keyEnd: nameEnd, value: value, valueEnd: valueEnd}
			}
		case string(f) == metaEpoch:
			epoch, hasEpoch = reply[value:valueEnd], true
		case string(f) == metaSeq:
			seqText = reply[value:valueEnd]
		}
	}
	if r.i != len(reply) {
		return backend.Snapshot{}, r.malformed()
	}
	if n == 0 {
		return backend.Snapshot{}, errNoState
	}
	if !hasEpoch {
		return backend.Snapshot{}, errNoMeta
	}
	if !backend.ValidEpoch(string(epoch)) {
		return backend.Snapshot{}, corruptError(keyState, metaEpoch, string(epoch), len(epoch))
	}
	if seqText == nil {
		seqText = []byte("0") // no write yet
	}
	v, err := strconv.ParseUint(string(seqText), 10, 64) // digits only: no sign without base 0
	if err != nil || len(seqText) > maxDigits || v > maxNumber {
		return backend.Snapshot{}, corruptError(keyState, metaSeq, string(seqText), len(seqText))
	}
	if bad != nil {
		_, _, err := parseHead(string(reply[bad.key:bad.keyEnd]), reply[bad.value:bad.valueEnd])
		return backend.Snapshot{}, err
	}
	// The keys, copied in the reply's order, which reads it in order.
	var b strings.Builder
	b.Grow(keyBytes)
	for i := range fields {
		b.Write(reply[fields[i].key:fields[i].keyEnd])
	}
	all, keys := b.String(), slices.Grow(sc.keys[:0], len(fields))[:len(fields)]
	defer func() { clear(keys); sc.keys = keys[:0] }() // nothing kept pins the keys
	for i, off := 0, 0; i < len(fields); i++ {
		end := off + fields[i].keyEnd - fields[i].key
		keys[i], off = all[off:end], end
	}
	e0 := string(epoch)
	if dst == nil {
		dst = make([]backend.Entry, 0, len(keys)) // not nil when empty, as before
	}
	n0 := len(dst)
	snap := backend.Snapshot{Entries: slices.Grow(dst, len(keys))[:n0+len(keys)], Cursor: backend.Cursor{Epoch: e0, Seq: uint64(v)}}
	sc.order = byteOrder(keys, sc.order)
	for j, i := range sc.order {
		// Every field, one by one (see backend.Log.Append).
		f, e := &fields[i], &snap.Entries[n0+j]
		e.Key, e.Value, e.Version, e.Epoch = keys[i], reply[f.value:f.valueEnd:f.valueEnd], uint64(f.head[0]), e0
		e.CreatedAt, e.UpdatedAt, e.ExpiresAt, e.Memo = f.head[1], f.head[2], f.head[3], nil
	}
	return snap, nil
}

// respReader reads the RESP reply b from position i on.
type respReader struct {
	b []byte
	i int
}

// replyError is an error reply that the client read as bytes: a [redis.Error].
type replyError string

func (e replyError) Error() string { return string(e) }

// RedisError marks replyError as a [redis.Error].
func (replyError) RedisError() {}

// malformed returns the error of a reply that is not what the command returns.
func (r *respReader) malformed() error {
	return fmt.Errorf("redisstore: %w reply %q", errMalformed, r.b[:min(len(r.b), 64)])
}

// mapLen reads the header of a map of n pairs: "%<n>" (RESP3) or "*<2n>" (RESP2). An error
// reply is returned as a replyError.
func (r *respReader) mapLen() (int, error) {
	if len(r.b) > 0 && r.b[0] == '-' {
		line, _, _ := bytes.Cut(r.b[1:], []byte("\r\n"))
		return 0, replyError(line)
	}
	if len(r.b) > 0 && r.b[0] == '%' {
		if n, ok := r.length('%'); ok {
			return n, nil
		}
	} else if n, ok := r.length('*'); ok && n%2 == 0 {
		return n / 2, nil
	}
	return 0, r.malformed()
}

// bulk reads a bulk string, "$<n>\r\n" and n bytes and "\r\n", and returns the offsets of its
// bytes in b.
func (r *respReader) bulk() (start, end int, ok bool) {
	n, ok := r.length('$')
	if !ok || n > len(r.b)-r.i-2 || r.b[r.i+n] != '\r' || r.b[r.i+n+1] != '\n' {
		return 0, 0, false
	}
	start, end = r.i, r.i+n
	r.i = end + 2
	return start, end, true
}

// length reads "<kind><n>\r\n", n a length of at most len(b) in decimal digits, and returns n.
func (r *respReader) length(kind byte) (int, bool) {
	b, i := r.b, r.i
	if i >= len(b) || b[i] != kind {
		return 0, false
	}
	n := 0
	for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int(b[i]-'0')
		if n > len(b) {
			return 0, false
		}
	}
	if i+1 >= len(b) || b[i] != '\r' || b[i+1] != '\n' || b[i-1] == kind {
		return 0, false
	}
	r.i = i + 2
	return n, true
}

// byteOrder returns the indexes of keys in the byte order of the keys. It packs each index
// with the bytes after the prefix all keys share, as many as fit beside it in a uint64, sorts
// the integers (a radix sort of those bytes), and compares whole keys only among those with
// equal bytes: sorting 10,000 keys takes a fraction of comparing strings throughout.
func byteOrder(keys []string, dst []uint64) []uint64 {
	common := 0
	if len(keys) > 0 {
		common = len(keys[0])
		for _, k := range keys[1:] {
			common = min(common, len(k))
			for k[:common] != keys[0][:common] {
				common--
			}
		}
	}
	shift := bits.Len(uint(len(keys))) // the low bits hold the index
	n := (64 - shift) / 8              // bytes of the key above them
	order := slices.Grow(dst[:0], len(keys))[:len(keys)]
	for i, k := range keys {
		var b [8]byte
		copy(b[:n], k[common:])
		order[i] = binary.BigEndian.Uint64(b[:]) | uint64(i)
	}
	sortTop(order, n)
	mask := uint64(1)<<shift - 1
	for lo := 0; lo < len(order); {
		hi := lo + 1
		for hi < len(order) && order[hi]&^mask == order[lo]&^mask {
			hi++
		}
		if hi-lo > 1 { // equal bytes: compare the whole keys
			slices.SortFunc(order[lo:hi], func(a, b uint64) int { return strings.Compare(keys[a&mask], keys[b&mask]) })
		}
		lo = hi
	}
	for i := range order {
		order[i] &= mask
	}
	return order
}

// sortTop sorts xs, whose low bits are their indexes in xs, by their n top bytes, keeping the
// order of xs among equal bytes: as slices.Sort does. Beyond a few hundred, it is a radix sort
// of the n bytes, a pass for each byte where they differ.
func sortTop(xs []uint64, n int) {
	if len(xs) < 256 {
		slices.Sort(xs)
		return
	}
	var counts [8][256]int
	for _, x := range xs {
		for k := range n {
			counts[k][byte(x>>(56-8*k))]++
		}
	}
	src, dst := xs, make([]uint64, len(xs))
	for k := n - 1; k >= 0; k-- {
		shift, c := 56-8*k, &counts[k]
		if c[byte(src[0]>>shift)] == len(src) {
			continue // one byte throughout
		}
		sum := 0
		for b, m := range c {
			c[b], sum = sum, sum+m
		}
		for _, x := range src {
			b := byte(x >> shift)
			dst[c[b]] = x
			c[b]++
		}
		src, dst = dst, src
	}
	copy(xs, src)
}

// parseStored decodes a stored entry, "<version>|<createdAt>|<updatedAt>|<expiresAt>|<value>"
// with times in Unix milliseconds, as the scripts write it.
func parseStored(key, s string) (backend.Entry, error) {
	e, value, err := parseHead(key, s)
	if err != nil {
		return backend.Entry{}, err
	}
	e.Value = []byte(value)
	return e, nil
}

// parseHead decodes a stored entry but its value, which it returns as it is.
func parseHead[T string | []byte](key string, s T) (backend.Entry, T, error) {
	var n [4]int64
	skip, ok := parseNumbers(s, &n)
	if !ok {
		var none T
		return backend.Entry{}, none, corruptError(keyState, entryPrefix+key, string(s), len(s))
	}
	return backend.Entry{Key: key, Version: uint64(n[0]), CreatedAt: n[1], UpdatedAt: n[2], ExpiresAt: n[3]}, s[skip:], nil
}

// parseNumbers decodes the four numbers a stored entry starts with, each of 1 to maxDigits
// decimal digits followed by a '|' (at most maxDigits, as lua/check.lua accepts, so that a
// value cannot overflow), into *n, and returns their length with the '|'s. It fills *n in
// place rather than returning the array: an array returned is copied with 16-byte loads of
// its 8-byte stores, which the CPU cannot forward (see backend.Log.Append); that copy and the
// append of the field it went into were a third of parseSnapshot's own samples in perf.
func parseNumbers[T string | []byte](s T, n *[4]int64) (skip int, ok bool) {
	i := 0
	for k := range n {
		j := i
		var v int64
		for ; j < len(s); j++ {
			c := s[j] - '0'
			if c > 9 {
				break
			}
			v = v*10 + int64(c) // more than maxDigits digits may wrap: they are refused below
		}
		if j == i || j-i > maxDigits || j == len(s) || s[j] != '|' {
			return 0, false
		}
		n[k], i = v, j+1
	}
	return i, true
}

// parseEntry decodes one stream entry, of ID id and fields as field returns them by name
// (see fieldEpoch): the events of versions v-n+1 to v of an entry "<v>-<n-1>". An entry that
// is not one the scripts wrote (junk added by another program) is one event of kind 0 whose
// version is the first part of its ID, for the reader to skip (see subscription.catchUp).
func parseEntry(id string, field func(name string) string) []backend.Event {
	last, more, ok1 := cutField(id, '-', true)
	n, rest1, ok2 := cutField(more, 0, false)
	at, rest2, ok3 := cutField(field(fieldAt), 0, false)
	epoch := field(fieldEpoch)
	if ok1 && ok2 && ok3 && rest1 == "" && rest2 == "" && backend.ValidEpoch(epoch) {
		if evs := parseEvents(field(fieldEvents), epoch, at, uint64(last)); int64(len(evs)) == n+1 {
			return evs
		}
	}
	return []backend.Event{{Version: idSeq(id)}}
}

// parseMessage decodes a stream entry as go-redis returns it (XRANGE, XREAD), as parseEntry
// does.
func parseMessage(m redis.XMessage) []backend.Event {
	return parseEntry(m.ID, func(name string) string { s, _ := m.Values[name].(string); return s })
}

// idSeq returns the first part of a stream entry's ID, "<seq>-<n>", or 0 when it has none.
func idSeq(id string) uint64 {
	seq, _, _ := strings.Cut(id, "-")
	v, _ := strconv.ParseUint(seq, 10, 64)
	return v
}

// parseEntries decodes stream entries as a script returns them:
// {{id, {field, value, ...}}, ...}, each as parseEntry does.
func parseEntries(raw []any) ([]backend.Event, error) {
	evs := make([]backend.Event, 0, len(raw))
	for _, r := range raw {
		pair, _ := r.([]any)
		if len(pair) != 2 {
			return nil, fmt.Errorf("redisstore: %w stream entry %v", errMalformed, r)
		}
		id, _ := pair[0].(string)
		flat, _ := pair[1].([]any)
		evs = append(evs, parseEntry(id, func(name string) string {
			for i := 0; i+1 < len(flat); i += 2 {
				if f, _ := flat[i].(string); f == name {
					s, _ := flat[i+1].(string)
					return s
				}
			}
			return ""
		})...)
	}
	return evs, nil
}

// replyBuffer holds the bytes of one reply as a [redis.RawWriteToCmd] writes them: the
// header line of each value, its CRLF, and a bulk string's bytes with ReadFrom.
type replyBuffer struct {
	b  []byte
	sc snapScratch // parseSnapshot's, for the reply in b
}

// snapScratch is the working memory of parseSnapshot, kept for the next snapshot with the
// reply buffer: the live fields, their keys and their order.
type snapScratch struct {
	fields []snapField
	keys   []string
	order  []uint64
}

// Write appends p. A line that starts a reply, rather than a bulk string within it, starts
// the buffer again: go-redis reads the reply again when it retries the command.
func (w *replyBuffer) Write(p []byte) (int, error) {
	if len(p) > 0 && p[0] != '$' && string(p) != "\r\n" {
		w.b = w.b[:0]
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

// ReadFrom appends what r holds, up to its end, in place: for an [io.LimitedReader] (a bulk
// string), its N bytes at once.
func (w *replyBuffer) ReadFrom(r io.Reader) (int64, error) {
	start := len(w.b)
	for {
		n := 512
		if lr, ok := r.(*io.LimitedReader); ok {
			n = int(min(lr.N, 1<<20))
		}
		w.b = slices.Grow(w.b, max(n, 1))
		m, err := r.Read(w.b[len(w.b):cap(w.b)])
		w.b = w.b[:len(w.b)+m]
		if err == io.EOF {
			return int64(len(w.b) - start), nil
		}
		if err != nil {
			return int64(len(w.b) - start), err
		}
		if lr, ok := r.(*io.LimitedReader); ok && lr.N == 0 {
			return int64(len(w.b) - start), nil
		}
	}
}

// replyBuffers holds reply buffers for reuse: a snapshot's reply is read into one and parsed
// into values of their own, and the buffer is reused by the next snapshot, without growing,
// with parseSnapshot's working memory.
var replyBuffers = sync.Pool{New: func() any { return new(replyBuffer) }}

// maxPooledReply is the capacity beyond which a reply buffer is not reused.
const maxPooledReply = 16 << 20

func getReplyBuffer() *replyBuffer { return replyBuffers.Get().(*replyBuffer) }

// maxPooledFields is the most fields of a snapshot whose working memory is reused.
const maxPooledFields = 1 << 17

func putReplyBuffer(w *replyBuffer) {
	if cap(w.b) <= maxPooledReply {
		w.b = w.b[:0]
		if cap(w.sc.fields) > maxPooledFields {
			w.sc = snapScratch{}
		}
		replyBuffers.Put(w)
	}
}

// retryableRawCmd is a RawWriteToCmd that go-redis may retry, since its writer starts again
// with the reply (see replyBuffer.Write).
type retryableRawCmd struct{ *redis.RawWriteToCmd }

// NoRetry implements [redis.Cmder].
func (retryableRawCmd) NoRetry() bool { return false }

// rawCmd returns the command of args whose reply go-redis writes, as its bytes, to w.
func rawCmd(ctx context.Context, w *replyBuffer, args ...any) redis.Cmder {
	return retryableRawCmd{redis.NewRawWriteToCmd(ctx, w, args...)}
}
