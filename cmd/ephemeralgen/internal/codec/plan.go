package codec

import (
	"go/token"
	"go/types"
	"slices"

	"golang.org/x/tools/go/types/typeutil"

	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/diag"
)

// The plan step walks the types of a codec as encoding/json would, reports everything that
// cannot be generated, and builds the plan that the print step (print.go) turns into code: a
// tree of encNode and decNode values, whose struct and named composite types refer to the
// shared helpers that encode and decode them; and, from the decoding plan, a tree of cloneNode
// values for the deep copy, which copies what the decoder fills.

const supported = "supported: bool, integers, floats, string, []byte, time.Time, time.Duration, pointers, " +
	"slices, arrays, maps with string, integer or text keys, structs, json.Marshaler/Unmarshaler, " +
	"encoding.TextMarshaler/TextUnmarshaler; or tag it json:\"-\""

// encOp is how a value is encoded.
type encOp uint8

const (
	encTime        encOp = iota + 1 // time.Time: e.Time
	encMarshal                      // its MarshalJSON or MarshalText method, on the value
	encMarshalAddr                  // its MarshalJSON or MarshalText method, on the value's address
	encMarshalPtr                   // a pointer with a MarshalJSON or MarshalText method: null if nil
	encHelper                       // the helper of its type
	encBasic                        // a bool, number or string
	encPointer                      // null if nil, else the element
	encBytes                        // base64
	encSlice                        // null if nil, else the elements
	encArray                        // the elements
	encMap                          // null if nil, else the members, sorted by key
)

// encNode is the plan of encoding one value of type t.
type encNode struct {
	op     encOp
	t      types.Type // unaliased
	text   bool       // encMarshal*: the text method rather than the JSON one
	quoted bool       // encBasic: the string option applies
	elem   *encNode   // encPointer, encSlice, encArray, encMap
	key    mapKey     // encMap
	h      *helper    // encHelper
	value  bool       // encHelper: call the variant for non-addressable values
}

// decOp is how a value is decoded.
type decOp uint8

const (
	decQuoted       decOp = iota + 1 // a string that holds the value (the string option)
	decUnmarshal                     // its UnmarshalJSON or UnmarshalText method
	decUnmarshalPtr                  // a pointer with an UnmarshalJSON or UnmarshalText method
	decHelper                        // the helper of its type
	decBasic                         // a bool, number or string
	decPointer                       // nil on null, else the element, allocated if needed
	decBytes                         // base64
	decSlice                         // nil on null, else the elements
	decArray                         // the elements; those past the end are dropped
	decMap                           // nil on null, else the members, into the map
)

// decNode is the plan of decoding one value of type t.
type decNode struct {
	op       decOp
	t        types.Type // unaliased
	text     bool       // decUnmarshal*: the text method rather than the JSON one
	nullable bool       // decUnmarshal: null sets the value to nil
	elem     *decNode   // decQuoted (the value in the string), decPointer, decSlice, decArray, decMap
	key      mapKey     // decMap
	h        *helper    // decHelper
}

// cloneOp is how a copy by assignment of a value is made deep.
type cloneOp uint8

const (
	cloneHelper    cloneOp = iota + 1 // the helper of its type
	cloneRoundTrip                    // encoded and decoded again, by its methods (a helper's body)
	clonePointer                      // unless nil, a copy of the element
	cloneSlice                        // a copy of the slice (nil stays nil), then the elements
	cloneArray                        // the elements
	cloneMap                          // unless nil, a new map of the keys and elements
)

// cloneNode is the plan of making deep a copy by assignment of one value of type t, so that it
// shares no memory with the value it was copied from. A nil *cloneNode means the copy shares
// none.
type cloneNode struct {
	op        cloneOp
	t         types.Type // unaliased
	key, elem *cloneNode // clonePointer, cloneSlice, cloneArray, cloneMap
	h         *helper    // cloneHelper
	text      bool       // cloneRoundTrip: by the text methods rather than the JSON ones
	enc       *encNode   // cloneRoundTrip without the encoding method: through the codec
	dec       *decNode
}

// mapKey is the kind of a map's key type.
type mapKey uint8

const (
	keyString mapKey = iota + 1
	keyInt
	keyUint
	keyText // by the MarshalText method of the key (encoding), or UnmarshalText of its pointer (decoding)
	keyJSON // by UnmarshalJSON of its pointer, with the key as quoted in the document (decoding)
)

// emptyTest is what omitempty tests before writing a member.
type emptyTest uint8

const (
	always  emptyTest = iota // no omitempty, or a type that is never empty
	never                    // an empty array: the member is never written
	isTrue                   // a bool
	nonZero                  // a number
	nonEmptyString
	nonNil // a pointer
	nonLen // a slice or map
)

// zeroTest is what omitzero tests on a value, as encoding/json does: its IsZero method if it
// has one, else whether it is its type's zero value.
type zeroTest uint8

const (
	noZeroTest     zeroTest = iota // no omitzero
	zeroMethod                     // x.IsZero()
	zeroPtrMethod                  // a pointer: x == nil || x.IsZero()
	zeroAddrMethod                 // IsZero on the pointer: (&x).IsZero()
	zeroValue                      // x == its zero value (== is reflect.Value.IsZero on a comparable type); once planned, an array or struct
	zeroNil                        // a slice or map: x == nil
)

// encField is the plan of encoding one member of a struct.
type encField struct {
	field
	empty emptyTest
	zero  zeroTest
	node  *encNode
	deref bool // node encodes the element of the field, a pointer that empty or zero tested
}

// nonNil reports whether the field is written only when it is not nil (a pointer, slice or
// map that omitempty or omitzero tested).
func (f encField) nonNil() bool {
	return f.empty == nonNil || f.empty == nonLen || f.zero == zeroPtrMethod || f.zero == zeroNil
}

// decField is the plan of decoding one member of a struct.
type decField struct {
	field
	node *decNode
}

// cloneField is the plan of making deep the member of one field of a struct, once the embedded
// pointers it is promoted through are copied.
type cloneField struct {
	field
	node *cloneNode
}

// planner plans the code of one function body.
type planner struct {
	g     *Generator
	diags *[]diag.Diagnostic
	path  string    // Go path of the value, for diagnostics: "Presence.Meta"
	pos   token.Pos // position to report at
	self  *helper   // the helper being planned, if any
	deps  []*helper // helpers the body calls
}

// report records a diagnostic at the current position.
func (p *planner) report(format string, args ...any) {
	d := diag.Errorf(p.g.fset.Position(p.pos), format, args...)
	if !p.g.seen[d] {
		p.g.seen[d] = true
		*p.diags = append(*p.diags, d)
	}
}

// unsupported reports that t is not supported.
func (p *planner) unsupported(t types.Type) {
	if t == types.Typ[types.Invalid] {
		// Not known when the package is loaded: a type error, reported as well, or a type
		// that ephemeralgen generates (a store's key), whose declaration the load leaves out.
		p.report("field %s: its type is not known: it has an error, or is one that ephemeralgen generates, such as a store's key, which a stored value cannot hold (declare one like it instead)", p.path)
		return
	}
	if _, ok := t.Underlying().(*types.Interface); ok {
		// The codec decodes into concrete types only; json.RawMessage keeps any JSON value.
		p.report("field %s: unsupported type %s, an interface: for a field of any JSON value use json.RawMessage (%s)", p.path, reflectName(t), supported)
		return
	}
	p.report("field %s: unsupported type %s (%s)", p.path, reflectName(t), supported)
}

// helper returns the helper of t and records that this body calls it.
func (p *planner) helper(t types.Type) *helper {
	h := p.g.helperFor(p, t)
	p.dep(h)
	return h
}

// dep records that this body calls h.
func (p *planner) dep(h *helper) {
	if !slices.Contains(p.deps, h) && h != p.self {
		p.deps = append(p.deps, h)
	}
}

// check reports t if no code can be generated for it, and returns false then.
func (p *planner) check(t types.Type) bool {
	switch u := t.Underlying().(type) {
	case *types.Basic:
		if u.Info()&(types.IsBoolean|types.IsInteger|types.IsFloat|types.IsString) == 0 || u.Info()&types.IsUntyped != 0 {
			p.unsupported(t)
			return false
		}
	case *types.Interface, *types.Signature, *types.Chan, *types.TypeParam:
		p.unsupported(t)
		return false
	case *types.Pointer:
		if isNamed(t) {
			p.report("field %s: unsupported named pointer type %s (use *%s)", p.path, reflectName(t), reflectName(u.Elem()))
			return false
		}
	case *types.Slice:
		if b, ok := u.Elem().Underlying().(*types.Basic); ok && b.Kind() == types.Uint8 && isNamed(u.Elem()) && isByteSlice(t) {
			p.report("field %s: unsupported slice of named byte type %s (use []byte)", p.path, reflectName(t))
			return false
		}
	}
	if n, ok := t.(*types.Named); ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == "encoding/json" && n.Obj().Name() == "Number" {
		p.report("field %s: unsupported type json.Number (use float64, int64 or string)", p.path)
		return false
	}
	if why := unnameable(t, p.g.pkg); why != "" {
		p.report("field %s: %s", p.path, why)
		return false
	}
	return true
}

// enc plans the encoding of a value of type t; addr tells whether encoding/json would see it as
// addressable, quoted whether the string option applies. It returns nil after reporting a
// problem.
func (p *planner) enc(t types.Type, addr, quoted bool) *encNode {
	t = types.Unalias(t)
	if !p.check(t) {
		return nil
	}
	if isTime(t) {
		return &encNode{op: encTime, t: t}
	}
	if isPointer(t) {
		switch {
		case implements(t, marshaler):
			return &encNode{op: encMarshalPtr, t: t}
		case implements(t, textMarshaler):
			return &encNode{op: encMarshalPtr, t: t, text: true}
		}
	} else {
		switch {
		case addr && ptrImplements(t, marshaler):
			return &encNode{op: encMarshalAddr, t: t}
		case implements(t, marshaler):
			return &encNode{op: encMarshal, t: t}
		case addr && ptrImplements(t, textMarshaler):
			return &encNode{op: encMarshalAddr, t: t, text: true}
		case implements(t, textMarshaler):
			return &encNode{op: encMarshal, t: t, text: true}
		}
	}
	if usesHelper(t) {
		h := p.helper(t)
		n := &encNode{op: encHelper, t: t, h: h}
		if !addr && sensitive(t) {
			p.g.needNA(p, h)
			n.value = true
		} else {
			h.wantEnc = true
		}
		return n
	}
	return p.encStructural(t, addr, quoted)
}

// encStructural plans the encoding of a value of type t by its kind, ignoring methods.
func (p *planner) encStructural(t types.Type, addr, quoted bool) *encNode {
	n := &encNode{t: t}
	switch u := t.Underlying().(type) {
	case *types.Basic:
		n.op, n.quoted = encBasic, quoted
		return n
	case *types.Pointer:
		n.op, n.elem = encPointer, p.enc(u.Elem(), true, quoted)
	case *types.Slice:
		if isByteSlice(t) {
			n.op = encBytes
			return n
		}
		n.op, n.elem = encSlice, p.enc(u.Elem(), true, false)
	case *types.Array:
		n.op = encArray
		if u.Len() == 0 {
			return n
		}
		n.elem = p.enc(u.Elem(), addr, false)
	case *types.Map:
		n.op, n.key = encMap, p.encKey(u.Key())
		if n.key == 0 {
			return nil
		}
		n.elem = p.enc(u.Elem(), false, false)
	default:
		p.unsupported(t)
		return nil
	}
	if n.elem == nil {
		return nil
	}
	return n
}

// encKey returns how the keys of a map with key type kt are written, in the order of
// encoding/json's resolveKeyName: a string kind as the string; else, if kt has a MarshalText
// method (on the value: a map key is not addressable), as its text; else an integer in
// decimal. Otherwise it reports kt.
func (p *planner) encKey(kt types.Type) mapKey {
	kt = types.Unalias(kt)
	kb, _ := kt.Underlying().(*types.Basic)
	switch {
	case kb != nil && kb.Info()&types.IsString != 0:
		return keyString
	case implements(kt, textMarshaler):
		return keyText
	case kb != nil && kb.Info()&types.IsUnsigned != 0:
		return keyUint
	case kb != nil && kb.Info()&types.IsInteger != 0:
		return keyInt
	}
	p.badKey(kt)
	return 0
}

// decKey returns how the keys of a map with key type kt are read, as encoding/json's object
// reads them: when the pointer has an UnmarshalText method, whatever the kind, by that method,
// or by its UnmarshalJSON method if it has one too, which gets the key as it is quoted in the
// document, escapes and all; else a string kind as the string, an integer kind in decimal.
// Otherwise it reports kt.
func (p *planner) decKey(kt types.Type) mapKey {
	kt = types.Unalias(kt)
	kb, _ := kt.Underlying().(*types.Basic)
	switch {
	case implements(types.NewPointer(kt), textUnmarshaler) && implements(types.NewPointer(kt), unmarshaler):
		return keyJSON
	case implements(types.NewPointer(kt), textUnmarshaler):
		return keyText
	case kb != nil && kb.Info()&types.IsString != 0:
		return keyString
	case kb != nil && kb.Info()&types.IsUnsigned != 0:
		return keyUint
	case kb != nil && kb.Info()&types.IsInteger != 0:
		return keyInt
	}
	p.badKey(kt)
	return 0
}

// badKey reports the unsupported map key type kt.
func (p *planner) badKey(kt types.Type) {
	p.report("field %s: unsupported map key type %s (use string, an integer type or a type with MarshalText and UnmarshalText)", p.path, reflectName(kt))
}

// dec plans the decoding of a value of type t; quoted tells whether the string option applies.
// It returns nil after reporting a problem.
func (p *planner) dec(t types.Type, quoted bool) *decNode {
	t = types.Unalias(t)
	if !p.check(t) {
		return nil
	}
	if quoted {
		elem := p.dec(t, false)
		if elem == nil {
			return nil
		}
		return &decNode{op: decQuoted, t: t, elem: elem}
	}
	if isPointer(t) {
		switch {
		case implements(t, unmarshaler):
			return &decNode{op: decUnmarshalPtr, t: t}
		case implements(t, textUnmarshaler):
			return &decNode{op: decUnmarshalPtr, t: t, text: true}
		}
	} else {
		switch {
		case ptrImplements(t, unmarshaler):
			return &decNode{op: decUnmarshal, t: t}
		case ptrImplements(t, textUnmarshaler):
			return &decNode{op: decUnmarshal, t: t, text: true, nullable: nilable(t)}
		}
	}
	if usesHelper(t) {
		h := p.helper(t)
		h.wantDec = true
		return &decNode{op: decHelper, t: t, h: h}
	}
	return p.decStructural(t)
}

// decStructural plans the decoding of a value of type t by its kind, ignoring methods.
func (p *planner) decStructural(t types.Type) *decNode {
	n := &decNode{t: t}
	switch u := t.Underlying().(type) {
	case *types.Basic:
		if _, ok := basicDecoders[u.Kind()]; !ok {
			p.unsupported(t)
			return nil
		}
		n.op = decBasic
		return n
	case *types.Pointer:
		n.op, n.elem = decPointer, p.dec(u.Elem(), false)
	case *types.Slice:
		if isByteSlice(t) {
			n.op = decBytes
			return n
		}
		n.op, n.elem = decSlice, p.dec(u.Elem(), false)
	case *types.Array:
		n.op, n.elem = decArray, p.dec(u.Elem(), false)
	case *types.Map:
		n.op, n.key = decMap, p.decKey(u.Key())
		if n.key == 0 {
			return nil
		}
		n.elem = p.dec(u.Elem(), false)
	default:
		p.unsupported(t)
		return nil
	}
	if n.elem == nil {
		return nil
	}
	return n
}

// nilable reports whether null sets a value of type t to nil.
func nilable(t types.Type) bool {
	switch t.Underlying().(type) {
	case *types.Pointer, *types.Slice, *types.Map:
		return true
	}
	return false
}

// usesHelper reports whether values of t are encoded and decoded by helper functions.
func usesHelper(t types.Type) bool {
	switch t.Underlying().(type) {
	case *types.Struct:
		return true
	case *types.Slice, *types.Array, *types.Map:
		return isNamed(t) && !isByteSlice(t)
	}
	return false
}

// fieldPlanner returns the planner of field f: its path and, in this package, its position.
func (p *planner) fieldPlanner(f field) *planner {
	fp := *p
	fp.path = p.path + "." + f.v().Name()
	if f.v().Pkg() == p.g.pkg && f.v().Pos().IsValid() {
		fp.pos = f.v().Pos()
	}
	return &fp
}

// merge takes back the helpers a field's planner recorded.
func (p *planner) merge(fp *planner) {
	for _, h := range fp.deps {
		if !slices.Contains(p.deps, h) {
			p.deps = append(p.deps, h)
		}
	}
}

// checkField reports what generated code cannot do for field f, the field of a struct that p
// plans: options the codecs do not support, and fields that it cannot reach.
func (p *planner) checkField(f field) bool {
	t := f.typ()
	if f.omitZero && zeroTestOf(types.Unalias(t)) == noZeroTest {
		p.report("field %s: the omitzero option on type %s, which is not comparable and has no IsZero method, is not supported (give the type an IsZero method, or use omitempty)", p.path, reflectName(t))
		return false
	}
	if f.quoted {
		base := types.Unalias(t)
		if ptr, ok := base.(*types.Pointer); ok {
			base = ptr.Elem()
		}
		for _, i := range []*types.Interface{marshaler, unmarshaler, textMarshaler, textUnmarshaler} {
			if implements(base, i) || implements(types.NewPointer(base), i) {
				p.report("field %s: the string option on type %s, which has its own JSON or text methods, is not supported (remove the option)", p.path, reflectName(t))
				return false
			}
		}
	}
	for _, v := range f.vars[:len(f.vars)-1] {
		if !v.Exported() && v.Pkg() != p.g.pkg {
			p.report("field %s: promoted through the unexported embedded field %s of package %s, which generated code cannot reach (tag it json:\"-\")",
				p.path, v.Name(), v.Pkg().Name())
			return false
		}
		if !v.Exported() && isPointer(v.Type()) {
			p.report("field %s: promoted through the embedded pointer %s to an unexported struct type, which encoding/json writes but cannot read back (it cannot allocate it): a value with it set would be stored and never read (embed the struct by value, export its type, or tag the embedded field json:\"-\")",
				p.path, v.Name())
			return false
		}
	}
	return true
}

// structEnc plans the encoding of the members of struct type t; addr tells whether the struct
// is addressable.
func (p *planner) structEnc(t types.Type, addr bool) []encField {
	var fs []encField
	for _, f := range jsonFields(t) {
		fp := p.fieldPlanner(f)
		if ef, ok := fp.encField(f, addr); ok {
			fs = append(fs, ef)
		}
		p.merge(fp)
	}
	return fs
}

// encField plans the encoding of the member of field f.
func (p *planner) encField(f field, addr bool) (encField, bool) {
	if !p.checkField(f) {
		return encField{}, false
	}
	t := types.Unalias(f.typ())
	ef := encField{field: f}
	if f.omitEmpty {
		ef.empty = emptyTestOf(t)
	}
	if f.omitZero {
		ef.zero = zeroTestOf(t)
		// Where one test implies the other, keep that one: go vet rejects a condition
		// joined with itself.
		switch {
		case ef.zero == zeroValue && emptyTestOf(t) != always:
			// A bool, number, string or pointer (or an empty array) is zero when it is empty.
			ef.empty, ef.zero = emptyTestOf(t), noZeroTest
		case ef.zero == zeroNil && ef.empty == nonLen:
			ef.zero = noZeroTest // a slice or map of some length is not nil
		case ef.zero == zeroPtrMethod && ef.empty == nonNil:
			ef.empty = always // its test is that the pointer is not nil, and the method's
		}
	}
	if ef.empty == never {
		return ef, true
	}
	if ptr, ok := t.(*types.Pointer); ok && ef.nonNil() && !implements(t, marshaler) && !implements(t, textMarshaler) {
		ef.node, ef.deref = p.enc(ptr.Elem(), true, f.quoted), true // omitempty or omitzero tested that it is not nil
	} else {
		ef.node = p.enc(t, addr || len(ptrGuards(f)) > 0, f.quoted)
	}
	return ef, ef.node != nil
}

// zeroTestOf returns what omitzero tests on a value of type t, or noZeroTest when the
// generated code cannot test it: a type that is not comparable and has no IsZero method.
func zeroTestOf(t types.Type) zeroTest {
	switch {
	case isPointer(t) && implements(t, isZeroer):
		return zeroPtrMethod
	case implements(t, isZeroer):
		return zeroMethod
	case ptrImplements(t, isZeroer):
		return zeroAddrMethod
	}
	switch t.Underlying().(type) {
	case *types.Slice, *types.Map:
		return zeroNil
	}
	if types.Comparable(t) {
		return zeroValue
	}
	return noZeroTest
}

// emptyTestOf returns what omitempty tests on a value of type t.
func emptyTestOf(t types.Type) emptyTest {
	switch u := t.Underlying().(type) {
	case *types.Basic:
		info := u.Info()
		switch {
		case info&types.IsBoolean != 0:
			return isTrue
		case info&types.IsString != 0:
			return nonEmptyString
		default:
			return nonZero
		}
	case *types.Pointer:
		return nonNil
	case *types.Slice, *types.Map:
		return nonLen
	case *types.Array:
		if u.Len() == 0 {
			return never
		}
	}
	return always
}

// structDec plans the decoding of the members of struct type t.
func (p *planner) structDec(t types.Type) []decField {
	var fs []decField
	for _, f := range jsonFields(t) {
		fp := p.fieldPlanner(f)
		if fp.checkField(f) {
			fs = append(fs, decField{field: f, node: fp.dec(f.typ(), f.quoted)})
		}
		p.merge(fp)
	}
	return fs
}

// clone plans the deep copy of a value whose decoding plan is n; nil when a copy by assignment
// shares no memory. It copies what the decoder fills: the members it decodes, and a value that
// its own method decodes, if it holds references, by a round trip (see roundTrip).
func (p *planner) clone(n *decNode) *cloneNode {
	if n == nil { // a problem was reported
		return nil
	}
	switch n.op {
	case decQuoted:
		return p.clone(n.elem)
	case decUnmarshal:
		return p.roundTrip(n.t)
	case decUnmarshalPtr:
		return &cloneNode{op: clonePointer, t: n.t, elem: p.roundTrip(n.t.Underlying().(*types.Pointer).Elem())}
	case decHelper:
		return p.cloneHelper(n.h)
	case decPointer:
		return &cloneNode{op: clonePointer, t: n.t, elem: p.clone(n.elem)}
	case decBytes:
		return &cloneNode{op: cloneSlice, t: n.t}
	case decSlice:
		return &cloneNode{op: cloneSlice, t: n.t, elem: p.clone(n.elem)}
	case decArray:
		if elem := p.clone(n.elem); elem != nil {
			return &cloneNode{op: cloneArray, t: n.t, elem: elem}
		}
	case decMap:
		var key *cloneNode
		if n.key == keyText {
			key = p.roundTrip(n.t.Underlying().(*types.Map).Key())
		}
		return &cloneNode{op: cloneMap, t: n.t, key: key, elem: p.clone(n.elem)}
	}
	return nil
}

// cloneHelper plans the deep copy of a value of the type of h, a helper planned for decoding.
func (p *planner) cloneHelper(h *helper) *cloneNode {
	return p.cloner(h, func(hp *planner) {
		if h.fields == nil {
			h.clone = hp.clone(h.dec)
			return
		}
		for _, f := range h.decFields {
			if n := hp.clone(f.node); n != nil || len(ptrGuards(f.field)) > 0 {
				h.cloneFields = append(h.cloneFields, cloneField{field: f.field, node: n})
			}
		}
	})
}

// roundTrip plans the deep copy of a value of type t, which its own method decodes: nothing if
// t holds no reference, else encoding it with the method of the same kind, JSON or text, and
// decoding the result; through the codec if t has no such method.
func (p *planner) roundTrip(t types.Type) *cloneNode {
	t = types.Unalias(t)
	if !holdsReferences(t) {
		return nil
	}
	h := p.g.record(t)
	return p.cloner(h, func(hp *planner) {
		n := &cloneNode{op: cloneRoundTrip, t: t, text: !ptrImplements(t, unmarshaler)}
		enc := marshaler
		if n.text {
			enc = textMarshaler
		}
		if !ptrImplements(t, enc) {
			n.enc, n.dec = hp.enc(t, true, false), hp.dec(t, false)
		}
		h.clone = n
	})
}

// cloner returns the node that calls the deep copy of the type of h, which plan plans on first
// use; nil when a copy by assignment shares no memory.
func (p *planner) cloner(h *helper, plan func(hp *planner)) *cloneNode {
	if !h.clonePlanned {
		// A type that contains itself does so behind a pointer, slice or map: it shares memory.
		h.clonePlanned, h.wantClone = true, true
		hp := &planner{g: p.g, diags: p.diags, path: p.path, pos: p.pos, self: h}
		plan(hp)
		h.addDeps(hp.deps)
		h.wantClone = h.clone != nil || h.cloneFields != nil
	}
	if !h.wantClone {
		return nil
	}
	p.dep(h)
	return &cloneNode{op: cloneHelper, t: h.t, h: h}
}

// holdsReferences reports whether a value of type t holds, at any depth and in any field, a
// pointer, slice, map, channel, function or interface; the location of a time.Time, which is
// immutable, does not count.
func holdsReferences(t types.Type) bool {
	var seen typeutil.Map
	var walk func(t types.Type) bool
	walk = func(t types.Type) bool {
		if isTime(t) || seen.At(t) != nil {
			return false
		}
		seen.Set(t, true)
		switch u := t.Underlying().(type) {
		case *types.Basic:
			return u.Kind() == types.UnsafePointer
		case *types.Array, *types.Struct:
			return components(t, walk)
		}
		return true
	}
	return walk(t)
}
