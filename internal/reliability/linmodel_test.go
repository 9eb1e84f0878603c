package reliability

import (
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// The models and checks of the linearizability test (linear_test.go): what one call did, the
// porcupine models of the store's semantics, the matching of a reader's events to the calls,
// and the checks with their visualisation.

// linKind is what a call of the linearizability test does.
type linKind uint8

const (
	linGet linKind = iota
	linUpsert
	linTouch
	linQuiet // a quiet touch
	linRemove
	linInit    // not a call: sets a key's state, the snapshot a history starts from
	linInitSeq // not a call: sets the tenant's last version, from the same snapshot
	linSeq     // the cursor of the final snapshot: the tenant's last version
)

var linKindNames = [...]string{"get", "upsert", "touch", "quiet touch", "remove", "init", "init seq", "seq"}

// linInput is a call's input, as the models see it.
type linInput struct {
	kind  linKind
	key   int    // index of the key in linKeyNames; -1 for linInitSeq and linSeq
	value string // upsert: unique in a run
	cond  backend.Condition
	seq   uint64 // linInitSeq, linSeq
}

// linStatus is how a call ended.
type linStatus uint8

const (
	linOK       linStatus = iota // returned a result
	linConflict                  // failed with a *ConflictError
	linUnknown                   // failed otherwise (connection lost, deadline): applied or not
	linNoEffect                  // failed, and the reader's events show it was not applied
)

// linOutput is a call's result, as the models see it.
type linOutput struct {
	status linStatus
	// found: get found the key; touch and quiet touch OK; remove removed it; a conflict's key
	// was live; init: the key is live.
	found   bool
	value   string // get, init
	version uint64 // get, upsert, touch, quiet touch, conflict, init; remove once the reader saw it
}

// keyState is the state of one key in the models. When above is set the key's version is not
// known: it is above ver, because a write of unknown outcome may have taken a version since.
type keyState struct {
	live  bool
	value string
	ver   uint64
	above bool
}

// observe returns s with its version seen to be v, if it can be.
func (s keyState) observe(v uint64) (keyState, bool) {
	if s.above {
		if v <= s.ver {
			return s, false
		}
		s.ver, s.above = v, false
		return s, true
	}
	return s, v == s.ver
}

// split returns the states s can be in when cond holds (yes) and when it fails (no). A version
// condition on an unknown version may go both ways.
func (s keyState) split(cond backend.Condition) (yes, no []keyState) {
	switch cond.Kind {
	case backend.CondIfNew:
		if s.live {
			return nil, []keyState{s}
		}
		return []keyState{s}, nil
	case backend.CondIfExists:
		if s.live {
			return []keyState{s}, nil
		}
		return nil, []keyState{s}
	case backend.CondIfVersion:
		switch {
		case !s.live:
			return nil, []keyState{s}
		case !s.above && s.ver == cond.Version:
			return []keyState{s}, nil
		case !s.above:
			return nil, []keyState{s}
		case cond.Version > s.ver:
			at := s
			at.ver, at.above = cond.Version, false
			return []keyState{at}, []keyState{s}
		}
		return nil, []keyState{s}
	}
	return []keyState{s}, nil
}

// keyStep is the sequential specification of one key: the states s can move to when the call
// in returns out, none if it cannot. Versions of a key only grow; a write that returned one
// must have taken a version above the key's. A call of unknown outcome may or may not have
// been applied: both states follow. Expiry is not modelled: the test's TTLs outlast it.
func keyStep(s keyState, in linInput, out linOutput) []keyState {
	switch in.kind {
	case linInit:
		return []keyState{{live: out.found, value: out.value, ver: out.version}}
	case linGet:
		switch {
		case out.status != linOK:
			return []keyState{s}
		case !out.found:
			return when(!s.live, s)
		case !s.live || s.value != out.value:
			return nil
		}
		n, ok := s.observe(out.version)
		return when(ok, n)
	}
	if out.status == linNoEffect {
		return []keyState{s}
	}
	if out.status == linOK && !out.found && in.kind != linUpsert {
		// A touch or remove of a key that is not live: nothing happened.
		return when(!s.live, s)
	}
	yes, no := s.split(in.cond)
	var next []keyState
	switch out.status {
	case linConflict:
		for _, n := range no {
			if n.live != out.found {
				continue
			}
			if n.live {
				var ok bool
				if n, ok = n.observe(out.version); !ok || in.cond.Kind == backend.CondIfVersion && n.ver == in.cond.Version {
					continue
				}
			}
			next = append(next, n)
		}
	case linUnknown:
		next = append(next, s) // not applied
		for _, y := range yes {
			switch in.kind {
			case linUpsert:
				next = append(next, keyState{live: true, value: in.value, ver: y.ver, above: true})
			case linTouch:
				if y.live {
					y.above = true
					next = append(next, y)
				}
			case linRemove:
				if y.live {
					next = append(next, keyState{ver: y.ver, above: true})
				}
			}
		}
	case linOK:
		for _, y := range yes {
			switch in.kind {
			case linUpsert:
				if out.version > y.ver {
					next = append(next, keyState{live: true, value: in.value, ver: out.version})
				}
			case linTouch:
				if y.live && out.version > y.ver {
					y.ver, y.above = out.version, false
					next = append(next, y)
				}
			case linQuiet:
				if n, ok := y.observe(out.version); ok && y.live {
					next = append(next, n)
				}
			case linRemove:
				switch {
				case !y.live:
				case out.version == 0: // the version of a remove is not returned to the caller
					next = append(next, keyState{ver: y.ver, above: true})
				case out.version > y.ver:
					next = append(next, keyState{ver: out.version})
				}
			}
		}
	}
	return next
}

func when(ok bool, s keyState) []keyState {
	if ok {
		return []keyState{s}
	}
	return nil
}

// linKeyModel is the per-key model: partitioned by key, nondeterministic where a call's outcome
// is unknown. It checks the calls as the clients saw them, without the reader's help.
var linKeyModel = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := make([][]porcupine.Operation, len(linKeyNames))
		for _, o := range history {
			if k := o.Input.(linInput).key; k >= 0 {
				byKey[k] = append(byKey[k], o)
			}
		}
		return byKey
	},
	Init: func() []any { return []any{keyState{}} },
	Step: func(state, input, output any) []any {
		var next []any
		for _, n := range keyStep(state.(keyState), input.(linInput), output.(linOutput)) {
			next = append(next, n)
		}
		return next
	},
	Hash:              func(state any) uint64 { return hashKeyState(fnv.New64a(), state.(keyState)) },
	DescribeOperation: describeOp,
	DescribeState:     func(state any) string { return describeKey(state.(keyState)) },
}

// tenantState is the state of a whole tenant: its last version and its keys.
type tenantState struct {
	seq  uint64
	keys [linKeys]keyState
}

// linTenantModel is the model of a whole tenant, unpartitioned: every change takes the next
// version. It checks the calls once the reader's events have settled every unknown outcome
// (patch), so that a linearization of it orders the writes exactly as the reader received
// them.
var linTenantModel = porcupine.Model{
	Init: func() any { return tenantState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(tenantState), input.(linInput), output.(linOutput)
		switch in.kind {
		case linInitSeq:
			s.seq = in.seq
			return true, s
		case linSeq:
			return s.seq == in.seq, s
		}
		next := keyStep(s.keys[in.key], in, out)
		if len(next) != 1 || next[0].above {
			return false, s // no state, or an outcome the reader did not settle
		}
		if changes(in, out) {
			if out.version != s.seq+1 {
				return false, s
			}
			s.seq = out.version
		}
		s.keys[in.key] = next[0]
		return true, s
	},
	Hash: func(state any) uint64 {
		s := state.(tenantState)
		h := fnv.New64a()
		fmt.Fprint(h, s.seq)
		for _, k := range s.keys {
			hashKeyState(h, k)
		}
		return h.Sum64()
	},
	DescribeOperation: describeOp,
	DescribeState: func(state any) string {
		s := state.(tenantState)
		d := "v" + strconv.FormatUint(s.seq, 10)
		for i, k := range s.keys {
			d += fmt.Sprintf(", %s: %s", linKeyNames[i], describeKey(k))
		}
		return d
	},
}

// changes reports whether a call that returned out took a version.
func changes(in linInput, out linOutput) bool {
	if out.status != linOK {
		return false
	}
	switch in.kind {
	case linUpsert:
		return true
	case linTouch, linRemove:
		return out.found
	}
	return false
}

type hash64 interface {
	Write([]byte) (int, error)
	Sum64() uint64
}

func hashKeyState(h hash64, s keyState) uint64 {
	fmt.Fprintf(h, "%v|%s|%d|%v;", s.live, s.value, s.ver, s.above)
	return h.Sum64()
}

func describeKey(s keyState) string {
	v := "v" + strconv.FormatUint(s.ver, 10)
	if s.above {
		v = ">" + v
	}
	if !s.live {
		return "gone " + v
	}
	return fmt.Sprintf("%q %s", s.value, v)
}

func describeOp(input, output any) string {
	in, out := input.(linInput), output.(linOutput)
	call := linKindNames[in.kind]
	if in.key >= 0 {
		call += "(" + linKeyNames[in.key]
		if in.kind == linUpsert {
			call += fmt.Sprintf(", %q", in.value)
		}
		switch in.cond.Kind {
		case backend.CondIfNew:
			call += ", IfNew"
		case backend.CondIfExists:
			call += ", IfExists"
		case backend.CondIfVersion:
			call += fmt.Sprintf(", IfVersion %d", in.cond.Version)
		}
		call += ")"
	} else {
		call += " " + strconv.FormatUint(in.seq, 10)
	}
	var res string
	switch out.status {
	case linUnknown:
		res = "? (outcome unknown)"
	case linNoEffect:
		res = "not applied (no event)"
	case linConflict:
		res = "conflict, not live"
		if out.found {
			res = fmt.Sprintf("conflict, live at v%d", out.version)
		}
	default:
		switch {
		case in.kind == linSeq || in.kind == linInitSeq:
			res = "ok"
		case in.kind == linUpsert:
			res = fmt.Sprintf("v%d", out.version)
		case !out.found:
			res = "not live"
		case in.kind == linGet || in.kind == linInit:
			res = fmt.Sprintf("%q v%d", out.value, out.version)
		case in.kind == linRemove && out.version == 0:
			res = "removed"
		default:
			res = fmt.Sprintf("ok v%d", out.version)
		}
	}
	return call + " → " + res
}

// linOp is one call of a worker, with what the event check needs beyond the models' view.
type linOp struct {
	client    int // the worker, porcupine's client ID
	in        linInput
	out       linOutput
	call, ret int64 // nanoseconds since the run started; ret is math.MaxInt64 when unknown
	ttl       time.Duration
	more      []int // a touch of TouchMany: the keys it touches after in.key (draw only; see do)
	reason    string
	entry     ephemeral.Entry[string, string] // upsert's result
	touch     ephemeral.TouchResult           // touch's result
	err       error

	ev *linEvent // the event the reader received for it
}

func (o *linOp) String() string {
	ret := "∞"
	if o.ret != math.MaxInt64 {
		ret = time.Duration(o.ret).String()
	}
	s := fmt.Sprintf("worker %d [%v, %s] %s", o.client, time.Duration(o.call), ret, describeOp(o.in, o.out))
	if o.err != nil {
		s += " (" + o.err.Error() + ")"
	}
	return s
}

// applied reports whether the call returned success for a change, which must have an event.
func (o *linOp) applied() bool { return changes(o.in, o.out) }

// linEvent is an event as a reader received it.
type linEvent struct {
	ev ephemeral.Event[string, string]
	at int64 // when Recv returned it, nanoseconds since the run started
}

// matchEvents matches the events of one history (one tenant, one segment) to its calls: an
// upsert by its unique value, a touch by its unique TTL (the event's ExpiresAt - At), a remove
// by its unique reason. It reports what contradicts the contract: an event of no call or of a
// call that reported no change, two events of one call, a successful call without its event,
// an event that differs from the call's result.
func matchEvents(ops []*linOp, events []linEvent) []string {
	type ttlKey struct {
		key int
		ttl time.Duration
	}
	byValue, byTTL, byReason := map[string]*linOp{}, map[ttlKey]*linOp{}, map[string]*linOp{}
	for _, o := range ops {
		switch o.in.kind {
		case linUpsert:
			byValue[o.in.value] = o
		case linTouch, linQuiet:
			byTTL[ttlKey{o.in.key, o.ttl}] = o
		case linRemove:
			byReason[o.reason] = o
		}
	}
	var bad []string
	for i := range events {
		e := &events[i]
		ev := e.ev
		var o *linOp
		switch ev.Kind {
		case ephemeral.EventUpsert:
			o = byValue[ev.Value]
		case ephemeral.EventTouch:
			o = byTTL[ttlKey{linKeyIndex(ev.Key), ev.ExpiresAt.Sub(ev.At)}]
		case ephemeral.EventDelete:
			o = byReason[ev.Reason]
		}
		switch {
		case o == nil || linKeyNames[o.in.key] != ev.Key || o.in.kind == linQuiet:
			bad = append(bad, fmt.Sprintf("event %+v matches no call that may have made it (%v)", ev, o))
			continue
		case o.ev != nil:
			bad = append(bad, fmt.Sprintf("two events of one call (applied twice): %+v and %+v of %v", o.ev.ev, ev, o))
			continue
		case e.at < o.call:
			bad = append(bad, fmt.Sprintf("event %+v received at %v, before its call %v", ev, time.Duration(e.at), o))
		}
		o.ev = e
		if o.out.status == linUnknown {
			continue
		}
		switch {
		case !o.applied():
			bad = append(bad, fmt.Sprintf("event %+v of a call that reported no change: %v", ev, o))
		case o.in.kind == linUpsert && (ev.Version != o.out.version || ev.Entry() != o.entry):
			bad = append(bad, fmt.Sprintf("event %+v, entry %+v; the upsert returned %+v", ev, ev.Entry(), o.entry))
		case o.in.kind == linTouch && (ev.Version != o.touch.Version || !ev.ExpiresAt.Equal(o.touch.ExpiresAt)):
			bad = append(bad, fmt.Sprintf("event %+v; the touch returned %+v", ev, o.touch))
		}
	}
	for _, o := range ops {
		if o.applied() && o.ev == nil {
			bad = append(bad, fmt.Sprintf("a successful call has no event (lost update): %v", o))
		}
	}
	return bad
}

// patch returns the operations of ops with every unknown outcome of a write settled by the
// reader's events (matched by matchEvents): a write whose event arrived took that event's
// version, no later than the event arrived; one without an event was not applied (the reader
// had every event up to the final snapshot's version). The version of each successful remove,
// which the caller does not learn, is its event's.
func patch(ops []*linOp) []porcupine.Operation {
	hist := make([]porcupine.Operation, 0, len(ops))
	for _, o := range ops {
		out, ret := o.out, o.ret
		if o.in.kind != linGet && o.in.key >= 0 {
			switch {
			case o.ev != nil && out.status == linUnknown:
				out = linOutput{status: linOK, found: true, version: o.ev.ev.Version}
				ret = o.ev.at
			case o.ev != nil && o.in.kind == linRemove:
				out.version = o.ev.ev.Version
			case out.status == linUnknown:
				out.status = linNoEffect
			}
		}
		hist = append(hist, porcupine.Operation{ClientId: o.client, Input: o.in, Call: o.call, Output: out, Return: ret})
	}
	return hist
}

// operations returns ops as porcupine sees them, unknown outcomes open-ended.
func operations(ops []*linOp) []porcupine.Operation {
	hist := make([]porcupine.Operation, 0, len(ops))
	for _, o := range ops {
		hist = append(hist, porcupine.Operation{ClientId: o.client, Input: o.in, Call: o.call, Output: o.out, Return: o.ret})
	}
	return hist
}

// linCheckTimeout bounds one porcupine check. The histories are built so that a check takes
// well under a second: the writes' versions order them.
const linCheckTimeout = 2 * time.Minute

// checkLinearizable checks hist against model; on a violation it writes porcupine's
// visualisation to a file and returns an error naming it.
func checkLinearizable(model porcupine.Model, hist []porcupine.Operation, what string) error {
	res, info := porcupine.CheckOperationsVerbose(model, hist, linCheckTimeout)
	switch res {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return fmt.Errorf("%s: porcupine gave up after %v on %d operations: no verdict", what, linCheckTimeout, len(hist))
	}
	f, err := os.CreateTemp("", "ephemeral-linearizability-*.html")
	if err != nil {
		return fmt.Errorf("%s: not linearizable (%d operations); no visualisation: %v", what, len(hist), err)
	}
	f.Close()
	if err := porcupine.VisualizePath(model, info, f.Name()); err != nil {
		return fmt.Errorf("%s: not linearizable (%d operations); visualisation failed: %v", what, len(hist), err)
	}
	return fmt.Errorf("%s: not linearizable (%d operations); porcupine's visualisation: %s", what, len(hist), f.Name())
}

// TestLinearizabilityModels checks the two models on small histories whose verdict is known.
func TestLinearizabilityModels(t *testing.T) {
	const inf = math.MaxInt64
	op := func(call, ret int64, in linInput, out linOutput) porcupine.Operation {
		return porcupine.Operation{Input: in, Output: out, Call: call, Return: ret}
	}
	upsert := func(key int, value string) linInput { return linInput{kind: linUpsert, key: key, value: value} }
	get := linInput{kind: linGet}
	at := func(v uint64) linOutput { return linOutput{found: true, version: v} }
	saw := func(value string, v uint64) linOutput { return linOutput{found: true, value: value, version: v} }
	unknown := linOutput{status: linUnknown}
	// The verdicts: linearizable per key, and as a whole tenant: yes, no, or - for a history with
	// unsettled outcomes, which the tenant model does not take.
	const yes, no, unsettled = "yes", "no", "-"
	for _, c := range []struct {
		name        string
		key, tenant string
		hist        []porcupine.Operation
	}{
		{"a read after a write sees it", yes, yes, []porcupine.Operation{
			op(0, 10, upsert(0, "a"), at(1)), op(20, 30, get, saw("a", 1))}},
		{"a stale read", no, no, []porcupine.Operation{
			op(0, 10, upsert(0, "a"), at(1)), op(20, 30, upsert(0, "b"), at(2)), op(40, 50, get, saw("a", 1))}},
		{"a read concurrent with a write sees either", yes, yes, []porcupine.Operation{
			op(0, 10, upsert(0, "a"), at(1)), op(20, 40, upsert(0, "b"), at(2)), op(30, 50, get, saw("a", 1)), op(30, 50, get, saw("b", 2))}},
		{"an unknown write seen by a read", yes, unsettled, []porcupine.Operation{
			op(0, 10, upsert(0, "a"), at(1)), op(20, inf, upsert(0, "b"), unknown), op(30, 40, get, saw("b", 5))}},
		{"an unknown write seen, then undone", no, unsettled, []porcupine.Operation{
			op(0, 10, upsert(0, "a"), at(1)), op(20, inf, upsert(0, "b"), unknown), op(30, 40, get, saw("b", 2)), op(50, 60, get, saw("a", 1))}},
		{"an unknown write never seen", yes, unsettled, []porcupine.Operation{
			op(0, 10, upsert(0, "a"), at(1)), op(20, inf, upsert(0, "b"), unknown), op(30, 40, get, saw("a", 1))}},
		{"a write settled as applied", yes, yes, []porcupine.Operation{
			op(0, 10, upsert(0, "a"), at(1)), op(20, 35, upsert(0, "b"), at(2)), op(30, 40, get, saw("b", 2))}},
		{"a write settled as applied, at the wrong version", yes, no, []porcupine.Operation{
			op(0, 10, upsert(0, "a"), at(1)), op(20, 35, upsert(0, "b"), at(3)), op(30, 40, get, saw("b", 3))}},
		{"a write settled as not applied", yes, yes, []porcupine.Operation{
			op(0, 10, upsert(0, "a"), at(1)), op(20, inf, upsert(0, "b"), linOutput{status: linNoEffect}), op(30, 40, get, saw("a", 1))}},
		{"a conditional write on a stale version", no, no, []porcupine.Operation{
			op(0, 10, upsert(0, "a"), at(1)), op(20, 30, upsert(0, "b"), at(2)),
			op(40, 50, linInput{kind: linUpsert, value: "c", cond: backend.Condition{Kind: backend.CondIfVersion, Version: 1}}, at(3))}},
		{"a conflict that reports the key's version", yes, yes, []porcupine.Operation{
			op(0, 10, upsert(0, "a"), at(1)),
			op(20, 30, linInput{kind: linUpsert, value: "c", cond: backend.Condition{Kind: backend.CondIfNew}}, linOutput{status: linConflict, found: true, version: 1})}},
		{"versions of two keys against real time", yes, no, []porcupine.Operation{
			op(0, 10, upsert(0, "a"), at(2)), op(20, 30, upsert(1, "b"), at(1))}},
		{"a removed key read", no, no, []porcupine.Operation{
			op(0, 10, upsert(0, "a"), at(1)), op(20, 30, linInput{kind: linRemove}, linOutput{found: true, version: 2}), op(40, 50, get, saw("a", 1))}},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "-"), func(t *testing.T) {
			verdict := map[bool]string{true: yes, false: no}
			if got := verdict[porcupine.CheckOperations(linKeyModel.ToModel(), c.hist)]; got != c.key {
				t.Errorf("per key: linearizable %s, want %s", got, c.key)
			}
			if got := verdict[porcupine.CheckOperations(linTenantModel, c.hist)]; c.tenant != unsettled && got != c.tenant {
				t.Errorf("whole tenant: linearizable %s, want %s", got, c.tenant)
			}
		})
	}
}
