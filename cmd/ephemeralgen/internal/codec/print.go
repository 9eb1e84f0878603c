package codec

import (
	"go/types"
	"slices"
	"strconv"

	"github.com/dave/jennifer/jen"

	"github.com/ephemeral-go/ephemeral/runtime/jsonc"
)

// The print step turns a checked plan into jennifer code. It makes no decision that can fail:
// everything it needs is in the plan.

// Idents names the parameters and local variables of the functions generated in one output
// file, so that none hides from the code in its scope a name that the code refers to: a
// declaration of the package (a type v, whose zero value v{} a parameter v would hide) or an
// import of the file. A name is its usual one (v, e, d, name, ...) unless the package or an
// import has it; then it is the first of name2, name3, ... that neither has. It also tells
// which predeclared functions the package hides (see hides).
type Idents struct {
	scope   *types.Scope
	imports map[string]bool
	names   map[string]string // usual name → name
}

// NewIdents returns the names of the parameters and locals of a file of package pkg whose
// imports have the names of imports (by path, as emit.NewFile returns them).
func NewIdents(pkg *types.Package, imports map[string]string) *Idents {
	ids := &Idents{scope: pkg.Scope(), imports: map[string]bool{}, names: map[string]string{}}
	for _, name := range imports {
		ids.imports[name] = true
	}
	return ids
}

// taken reports whether the package or an import of the file has the name.
func (ids *Idents) taken(name string) bool {
	return ids.imports[name] || ids.scope.Lookup(name) != nil
}

// hides reports whether the package declares name, and so hides the predeclared identifier
// name from the generated code. The code does without the predeclared functions new, make,
// len (but in the omitempty test of a slice or map), copy and clear where the package hides
// them; it cannot do without the others it uses (nil, error, string, ...), which the
// generator reports.
func (ids *Idents) hides(name string) bool { return ids.scope.Lookup(name) != nil }

// newStruct returns new(T) for the struct type T, written tc, or &T{} where the package hides
// new.
func (ids *Idents) newStruct(tc jen.Code) *jen.Statement {
	if ids.hides("new") {
		return jen.Op("&").Add(tc).Values()
	}
	return jen.New(tc)
}

// Name returns the name of the parameter or local variable usually called usual.
func (ids *Idents) Name(usual string) string {
	if name, ok := ids.names[usual]; ok {
		return name
	}
	name := usual
	for i := 2; ids.taken(name); i++ {
		name = usual + strconv.Itoa(i)
	}
	ids.names[usual] = name
	return name
}

// id refers to the parameter or local variable usually called usual.
func (ids *Idents) id(usual string) *jen.Statement { return jen.Id(ids.Name(usual)) }

// printer prints the statements of one function body.
type printer struct {
	*Idents
	self   *helper // the helper being printed, if any
	counts map[string]int
}

// expr is a Go expression of the value being encoded or decoded: either the value itself
// (addressable) or a pointer to it, with what is known about the value, which spares the code
// tests whose outcome is known.
type expr struct {
	val    jen.Code
	ptr    jen.Code
	nonNil bool // the value is not nil (it was tested)
	zero   bool // the value is the zero value of its type (it was just declared)
}

func (x expr) value() *jen.Statement {
	if x.val != nil {
		return jen.Add(x.val)
	}
	return jen.Op("*").Add(x.ptr)
}

func (x expr) addr() *jen.Statement {
	if x.ptr != nil {
		return jen.Add(x.ptr)
	}
	return jen.Op("&").Add(x.val)
}

// operand is the value as the operand of an index, slice or selector expression.
func (x expr) operand() *jen.Statement {
	if x.val != nil {
		return jen.Add(x.val)
	}
	return jen.Parens(jen.Op("*").Add(x.ptr))
}

// tmp returns a new local variable name: prefix, then prefix2, prefix3, ..., leaving out those
// that the package or an import has.
func (p *printer) tmp(prefix string) string {
	if p.counts == nil {
		p.counts = map[string]int{}
	}
	for {
		p.counts[prefix]++
		name := prefix
		if n := p.counts[prefix]; n > 1 {
			name += strconv.Itoa(n)
		}
		if !p.taken(name) {
			return name
		}
	}
}

// e calls the encoder method.
func (ids *Idents) e(method string, args ...jen.Code) *jen.Statement {
	return ids.id("e").Dot(method).Call(args...)
}

// d calls the decoder method.
func (ids *Idents) d(method string, args ...jen.Code) *jen.Statement {
	return ids.id("d").Dot(method).Call(args...)
}

// q calls the jsonc function.
func q(name string, args ...jen.Code) *jen.Statement { return jen.Qual(JSONCPath, name).Call(args...) }

// raw writes s verbatim.
func (ids *Idents) raw(s string) jen.Code { return ids.e("Raw", jen.Id("`"+s+"`")) }

// conv converts x to the basic type kind unless it has that type already.
func conv(t types.Type, kind types.BasicKind, x jen.Code) jen.Code {
	if types.Identical(t, types.Typ[kind]) {
		return x
	}
	return jen.Id(types.Typ[kind].Name()).Call(x)
}

// convPtr converts the pointer p to a pointer to the basic type kind unless it is one.
func convPtr(t types.Type, kind types.BasicKind, p jen.Code) jen.Code {
	if types.Identical(t, types.Typ[kind]) {
		return p
	}
	return jen.Parens(jen.Op("*").Id(types.Typ[kind].Name())).Call(p)
}

// marshalFunc returns the jsonc function that calls a marshaling method.
func marshalFunc(text bool) string {
	if text {
		return "MarshalText"
	}
	return "Marshal"
}

// unmarshalFunc returns the jsonc function that calls an unmarshaling method.
func unmarshalFunc(text bool) string {
	if text {
		return "UnmarshalText"
	}
	return "Unmarshal"
}

// enc returns the statements of plan n, which encode x.
func (p *printer) enc(n *encNode, x expr) []jen.Code {
	switch n.op {
	case encTime:
		return []jen.Code{p.e("Time", x.value())}
	case encMarshal:
		return []jen.Code{q(marshalFunc(n.text), p.id("e"), jen.Lit(reflectName(n.t)), x.value())}
	case encMarshalAddr:
		return []jen.Code{q(marshalFunc(n.text), p.id("e"), jen.Lit("*"+reflectName(n.t)), x.addr())}
	case encMarshalPtr:
		return p.orNull(x, q(marshalFunc(n.text), p.id("e"), jen.Lit(reflectName(n.t)), x.value()))
	case encHelper:
		name := "ephemeralEncode" + n.h.name
		if n.value {
			name += "Value"
		}
		return []jen.Code{jen.Id(name).Call(p.id("e"), x.addr())}
	case encBasic:
		return p.encBasicValue(n.t, n.quoted, x)
	case encPointer:
		return p.orNull(x, p.enc(n.elem, expr{ptr: x.value()})...)
	case encBytes:
		b := jen.Code(x.value())
		if !types.Identical(n.t, byteSlice) {
			b = jen.Index().Byte().Call(b)
		}
		return []jen.Code{p.e("Bytes", b)}
	case encSlice:
		i := p.tmp("i")
		return p.orNull(x,
			p.e("Byte", jen.LitRune('[')),
			jen.For(jen.Id(i).Op(":=").Range().Add(x.value())).Block(append([]jen.Code{
				jen.If(jen.Id(i).Op(">").Lit(0)).Block(p.e("Byte", jen.LitRune(',')))},
				p.enc(n.elem, expr{val: x.operand().Index(jen.Id(i))})...)...),
			p.e("Byte", jen.LitRune(']')))
	case encArray:
		if n.elem == nil {
			return []jen.Code{p.raw("[]")}
		}
		i := p.tmp("i")
		return []jen.Code{
			p.e("Byte", jen.LitRune('[')),
			jen.For(jen.Id(i).Op(":=").Range().Add(x.value())).Block(append([]jen.Code{
				jen.If(jen.Id(i).Op(">").Lit(0)).Block(p.e("Byte", jen.LitRune(',')))},
				p.enc(n.elem, expr{val: x.operand().Index(jen.Id(i))})...)...),
			p.e("Byte", jen.LitRune(']'))}
	case encMap:
		return p.encMap(n, x)
	}
	panic("codec: unplanned encoding")
}

// encBasicValue encodes x of basic type t.
func (ids *Idents) encBasicValue(t types.Type, quoted bool, x expr) []jen.Code {
	u := t.Underlying().(*types.Basic)
	var s jen.Code
	info := u.Info()
	switch {
	case info&types.IsBoolean != 0:
		s = ids.e("Bool", conv(t, types.Bool, x.value()))
	case info&types.IsUnsigned != 0:
		s = ids.e("Uint", conv(t, types.Uint64, x.value()))
	case info&types.IsInteger != 0:
		s = ids.e("Int", conv(t, types.Int64, x.value()))
	case u.Kind() == types.Float32:
		s = ids.e("Float32", conv(t, types.Float32, x.value()))
	case info&types.IsFloat != 0:
		s = ids.e("Float64", conv(t, types.Float64, x.value()))
	case quoted:
		return []jen.Code{ids.e("QuotedString", conv(t, types.String, x.value()))}
	default:
		return []jen.Code{ids.e("String", conv(t, types.String, x.value()))}
	}
	if quoted {
		return []jen.Code{ids.e("Byte", jen.LitRune('"')), s, ids.e("Byte", jen.LitRune('"'))}
	}
	return []jen.Code{s}
}

// encMap encodes the map x with its keys sorted as encoding/json sorts them.
func (p *printer) encMap(n *encNode, x expr) []jen.Code {
	kt := types.Unalias(n.t.Underlying().(*types.Map).Key())
	k, y := p.tmp("k"), p.tmp("y")
	var keys, key, elem jen.Code
	switch n.key {
	case keyString:
		keys = q("SortedKeys", x.value())
		key = p.e("String", conv(kt, types.String, jen.Id(k)))
		elem = x.operand().Index(jen.Id(k))
	case keyUint:
		keys = q("SortedUintKeys", x.value())
		key = p.e("UintKey", conv(kt, types.Uint64, jen.Id(k)))
		elem = x.operand().Index(jen.Id(k))
	case keyInt:
		keys = q("SortedIntKeys", x.value())
		key = p.e("IntKey", conv(kt, types.Int64, jen.Id(k)))
		elem = x.operand().Index(jen.Id(k))
	case keyText:
		keys = q("SortedTextKeys", p.id("e"), jen.Lit(reflectName(kt)), x.value())
		key = p.e("String", jen.Id(k).Dot("Text"))
		elem = x.operand().Index(jen.Id(k).Dot("Key"))
	}
	i := p.tmp("i")
	body := []jen.Code{
		p.e("Byte", jen.LitRune('{')),
		jen.For(jen.List(jen.Id(i), jen.Id(k)).Op(":=").Range().Add(keys)).Block(append([]jen.Code{
			jen.If(jen.Id(i).Op(">").Lit(0)).Block(p.e("Byte", jen.LitRune(','))),
			key,
			p.e("Byte", jen.LitRune(':')),
			jen.Id(y).Op(":=").Add(elem)},
			p.enc(n.elem, expr{val: jen.Id(y)})...)...),
		p.e("Byte", jen.LitRune('}'))}
	if !recursive(n.t) {
		return p.orNull(x, body...)
	}
	// A map that can hold itself is identified by its pointer, as encoding/json identifies it:
	// the values in it are copies, whose addresses identify nothing, so that a cycle through
	// them is found by the map alone.
	enter := jen.If(p.e("Enter", q("MapPointer", x.value()), jen.Lit(reflectName(n.t)))).
		Block(append(body, p.e("Leave", q("MapPointer", x.value())))...)
	if x.nonNil {
		return []jen.Code{enter}
	}
	return []jen.Code{jen.If(x.value().Op("==").Nil()).Block(p.e("Null")).Else().Add(enter)}
}

// orNull returns the statements that write null when x is nil, else stmts; stmts alone when x
// is known not to be nil.
func (ids *Idents) orNull(x expr, stmts ...jen.Code) []jen.Code {
	if x.nonNil {
		return stmts
	}
	return []jen.Code{jen.If(x.value().Op("==").Nil()).Block(ids.e("Null")).Else().Block(stmts...)}
}

// guardRecursion wraps the body of a helper for a recursive type in Enter and Leave; that of a
// map enters the map itself (see encMap).
func (ids *Idents) guardRecursion(t types.Type, body []jen.Code) []jen.Code {
	if _, isMap := t.Underlying().(*types.Map); isMap || !recursive(t) {
		return body
	}
	key := jen.Nil()
	if isStructType(t) {
		key = ids.id("v")
	}
	out := []jen.Code{jen.If(jen.Op("!").Add(ids.e("Enter", key, jen.Lit("*"+reflectName(t))))).Block(jen.Return())}
	out = append(out, body...)
	return append(out, ids.e("Leave", key))
}

// emitState tracks, while printing a struct encoder, what is known about the members written
// so far.
type emitState struct {
	open  bool // the { is written
	state int  // none, some, or unknown members written
}

const (
	noneWritten = iota
	someWritten
	maybeWritten
)

// structEnc returns the body of the encoder of struct type t, whose members fs encode.
func (ids *Idents) structEnc(t types.Type, fs []encField) []jen.Code {
	s := &emitState{}
	body := ids.encFieldList(fs, 0, s)
	if s.open {
		body = append(body, ids.e("Byte", jen.LitRune('}')))
	} else {
		body = append(body, ids.raw("{}"))
	}
	return ids.guardRecursion(t, body)
}

// encFieldList encodes the members fs of a struct, nesting those promoted through embedded
// pointers in nil checks from guard depth on.
func (ids *Idents) encFieldList(fs []encField, depth int, s *emitState) []jen.Code {
	var out []jen.Code
	for i := 0; i < len(fs); {
		gs := ptrGuards(fs[i].field)
		if len(gs) <= depth {
			out = append(out, ids.encMember(fs[i], s)...)
			i++
			continue
		}
		n := gs[depth]
		j := i + 1
		for j < len(fs) && sameGuard(fs[i].field, fs[j].field, depth) {
			j++
		}
		if !s.open {
			out = append(out, ids.e("Byte", jen.LitRune('{')))
			s.open = true
		}
		before := s.state
		inner := ids.encFieldList(fs[i:j], depth+1, s)
		out = append(out, jen.If(ids.selector(fs[i].field, n).Op("!=").Nil()).Block(inner...))
		if before != someWritten {
			s.state = maybeWritten
		}
		i = j
	}
	return out
}

// sameGuard reports whether field b is promoted through the embedded pointer that field a is
// promoted through at guard depth depth.
func sameGuard(a, b field, depth int) bool {
	ga, gb := ptrGuards(a), ptrGuards(b)
	n := ga[depth]
	return len(gb) > depth && gb[depth] == n && slices.Equal(a.index[:n], b.index[:n])
}

// selector returns v.A.B... for the first n fields of f.
func (ids *Idents) selector(f field, n int) *jen.Statement { return selectorOf(ids.Name("v"), f, n) }

// selectorOf is selector of the struct named root.
func selectorOf(root string, f field, n int) *jen.Statement {
	s := jen.Id(root)
	for _, v := range f.vars[:n] {
		s = s.Dot(v.Name())
	}
	return s
}

// encMember encodes the member of field f.
func (ids *Idents) encMember(f encField, s *emitState) []jen.Code {
	if f.empty == never {
		return nil
	}
	p := &printer{Idents: ids} // every field's temporaries are local to its own blocks
	sel := ids.selector(f.field, len(f.vars))
	x := expr{val: sel, nonNil: f.nonNil()}
	if f.deref {
		x = expr{ptr: sel}
	}
	value := p.enc(f.node, x)
	key := string(jsonc.AppendString(nil, f.name)) + ":"
	cond := emptyCond(f.empty, sel)
	if z := zeroCond(f, ids.selector(f.field, len(f.vars))); z != nil && cond != nil {
		cond = jen.Add(cond).Op("&&").Add(z)
	} else if z != nil {
		cond = z
	}
	if cond == nil {
		return append([]jen.Code{s.key(ids, key)}, value...)
	}
	var out []jen.Code
	if !s.open {
		out = append(out, ids.e("Byte", jen.LitRune('{')))
		s.open = true
	}
	before := s.state
	out = append(out, jen.If(cond).Block(append([]jen.Code{s.key(ids, key)}, value...)...))
	if before != someWritten {
		s.state = maybeWritten
	}
	return out
}

// key writes the member key k in state s.
func (s *emitState) key(ids *Idents, k string) jen.Code {
	defer func() { s.state = someWritten }()
	switch {
	case s.state == noneWritten && !s.open:
		s.open = true
		return ids.raw("{" + k)
	case s.state == noneWritten:
		return ids.raw(k)
	case s.state == someWritten:
		return ids.raw("," + k)
	}
	return ids.e("Key", jen.Id("`"+k+"`"))
}

// zeroCond returns the condition under which omitzero writes x, the value of field f, or nil
// if f has no omitzero test of its own (see encField).
func zeroCond(f encField, x *jen.Statement) jen.Code {
	switch f.zero {
	case zeroMethod:
		return jen.Op("!").Add(x).Dot("IsZero").Call()
	case zeroPtrMethod:
		return jen.Add(x).Op("!=").Nil().Op("&&").Op("!").Add(x.Clone()).Dot("IsZero").Call()
	case zeroAddrMethod:
		// x is a field of the encoder's variable v, so addressable: encoding/json calls the
		// method on a copy of a value that is not (in a map), the same for a method that only
		// reads its value.
		return jen.Op("!").Parens(jen.Op("&").Add(x)).Dot("IsZero").Call()
	case zeroNil:
		return jen.Add(x).Op("!=").Nil()
	case zeroValue: // an array or struct
		return jen.Add(x).Op("!=").Parens(jen.Add(typeCode(types.Unalias(f.typ()))).Values())
	}
	return nil
}

// emptyCond returns the condition under which omitempty writes x, or nil if always.
func emptyCond(t emptyTest, x *jen.Statement) jen.Code {
	switch t {
	case isTrue:
		return x
	case nonEmptyString:
		return jen.Add(x).Op("!=").Lit("")
	case nonZero:
		return jen.Add(x).Op("!=").Lit(0)
	case nonNil:
		return jen.Add(x).Op("!=").Nil()
	case nonLen:
		return jen.Len(x).Op("!=").Lit(0)
	}
	return nil
}

// dec returns the statements of plan n, which decode the next JSON value into x.
func (p *printer) dec(n *decNode, x expr) []jen.Code {
	switch n.op {
	case decQuoted:
		return []jen.Code{jen.If(p.d("Quoted")).Block(append(p.dec(n.elem, x), p.d("Unquote"))...)}
	case decUnmarshalPtr:
		return []jen.Code{p.decNullable(x, p.allocate(x, n.t),
			q(unmarshalFunc(n.text), p.id("d"), x.value()))}
	case decUnmarshal:
		s := q(unmarshalFunc(n.text), p.id("d"), x.addr())
		if n.nullable {
			return []jen.Code{p.decNullable(x, s)}
		}
		return []jen.Code{s}
	case decHelper:
		return []jen.Code{jen.Id("ephemeralDecode"+n.h.name).Call(p.id("d"), x.addr())}
	case decBasic:
		kind := n.t.Underlying().(*types.Basic).Kind()
		return []jen.Code{p.d(basicDecoders[kind], convPtr(n.t, kind, x.addr()))}
	case decPointer:
		return []jen.Code{p.decNullable(x, p.allocate(x, n.t),
			jen.Add(p.dec(n.elem, expr{ptr: x.value(), zero: x.zero})...))}
	case decBytes:
		ptr := jen.Code(x.addr())
		if !types.Identical(n.t, byteSlice) {
			ptr = jen.Parens(jen.Op("*").Index().Byte()).Call(ptr)
		}
		return []jen.Code{p.d("Bytes", ptr)}
	case decSlice:
		return p.decSlice(n, x)
	case decArray:
		i := p.tmp("i")
		length := func() jen.Code { return jen.Len(x.operand()) }
		if p.hides("len") {
			size := n.t.Underlying().(*types.Array).Len()
			length = func() jen.Code { return jen.Lit(int(size)) }
		}
		rest := jen.If(jen.Id(i).Op("<").Add(length())).Block(jen.Clear(x.operand().Index(jen.Id(i), jen.Empty())))
		if p.hides("clear") {
			z := p.tmp("z")
			rest = jen.For(jen.Op(";").Id(i).Op("<").Add(length()).Op(";").Id(i).Op("++")).Block(
				jen.Var().Id(z).Add(typeCode(n.elem.t)),
				x.operand().Index(jen.Id(i)).Op("=").Id(z))
		}
		return []jen.Code{jen.If(p.d("Array")).Block(
			jen.Id(i).Op(":=").Lit(0),
			jen.For(p.d("NextElem")).Block(
				jen.If(jen.Id(i).Op("<").Add(length())).Block(
					p.dec(n.elem, expr{val: x.operand().Index(jen.Id(i))})...).Else().Block(p.d("Skip")),
				jen.Id(i).Op("++")),
			rest)}
	case decMap:
		return p.decMap(n, x)
	}
	panic("codec: unplanned decoding")
}

// decSlice is the decoding of a slice (see dec): each element is decoded into the slice grown
// by one. Where the package hides len, a counter stands in for len(s).
func (p *printer) decSlice(n *decNode, x expr) []jen.Code {
	s := p.tmp("s")
	start := jen.Id(s).Op(":=").Add(x.operand()).Index(jen.Empty(), jen.Lit(0))
	elem := jen.Id(s).Index(jen.Len(jen.Id(s)).Op("-").Lit(1))
	length := jen.Len(jen.Id(s))
	var count []jen.Code
	if p.hides("len") {
		c := p.tmp("n")
		start = jen.List(jen.Id(s), jen.Id(c)).Op(":=").List(x.operand().Index(jen.Empty(), jen.Lit(0)), jen.Lit(0))
		elem, length = jen.Id(s).Index(jen.Id(c)), jen.Id(c)
		count = []jen.Code{jen.Id(c).Op("++")}
	}
	body := append([]jen.Code{jen.Id(s).Op("=").Add(q("Grow", jen.Id(s)))}, p.dec(n.elem, expr{val: elem})...)
	return []jen.Code{p.ifNotNull(x, p.d("Array")).Block(
		start,
		jen.For(p.d("NextElem")).Block(append(body, count...)...),
		jen.If(length.Op("==").Lit(0)).Block(jen.Id(s).Op("=").Add(typeCode(n.t)).Values()),
		x.value().Op("=").Id(s))}
}

// decNullable returns: if null, set x to nil; else the statements. When x is known to be nil,
// there is nothing to set.
func (ids *Idents) decNullable(x expr, stmts ...jen.Code) jen.Code {
	if x.zero {
		return jen.If(jen.Op("!").Add(ids.d("Null"))).Block(stmts...)
	}
	return jen.If(ids.d("Null")).Block(x.value().Op("=").Nil()).Else().Block(stmts...)
}

// ifNotNull returns the start of: if null, set x to nil; else if cond. When x is known to be
// nil, there is nothing to set.
func (ids *Idents) ifNotNull(x expr, cond jen.Code) *jen.Statement {
	if x.zero {
		return jen.If(jen.Op("!").Add(ids.d("Null")).Op("&&").Add(cond))
	}
	return jen.If(ids.d("Null")).Block(x.value().Op("=").Nil()).Else().If(cond)
}

// allocate sets the pointer x, of type t, to a new value if it is nil, or always when it is
// known to be nil.
func (p *printer) allocate(x expr, t types.Type) jen.Code {
	alloc := p.setNew(x.value(), t.Underlying().(*types.Pointer).Elem())
	if x.zero {
		return jen.Add(alloc...)
	}
	return jen.If(x.value().Op("==").Nil()).Block(alloc...)
}

// setNew returns the statements that set the pointer x to a new zero value of type t: new(T),
// or where the package hides new, &T{} for a type with composite literals, else the address
// of a new variable.
func (p *printer) setNew(x *jen.Statement, t types.Type) []jen.Code {
	tc := typeCode(t)
	if !p.hides("new") {
		return []jen.Code{x.Op("=").New(tc)}
	}
	switch t.Underlying().(type) {
	case *types.Struct, *types.Array, *types.Slice, *types.Map:
		return []jen.Code{x.Op("=").Op("&").Add(tc).Values()}
	}
	z := p.tmp("z")
	return []jen.Code{jen.Var().Id(z).Add(tc), x.Op("=").Op("&").Id(z)}
}

var basicDecoders = map[types.BasicKind]string{
	types.Bool: "Bool", types.String: "String",
	types.Int: "Int", types.Int8: "Int8", types.Int16: "Int16", types.Int32: "Int32", types.Int64: "Int64",
	types.Uint: "Uint", types.Uint8: "Uint8", types.Uint16: "Uint16", types.Uint32: "Uint32", types.Uint64: "Uint64",
	types.Uintptr: "Uintptr", types.Float32: "Float32", types.Float64: "Float64",
}

func (p *printer) decMap(n *decNode, x expr) []jen.Code {
	u := n.t.Underlying().(*types.Map)
	kt := types.Unalias(u.Key())
	k, y := p.tmp("k"), p.tmp("y")
	var key []jen.Code
	switch n.key {
	case keyText:
		key = []jen.Code{jen.Var().Id(k).Add(typeCode(kt)), q("UnmarshalTextKey", p.id("d"), jen.Op("&").Id(k))}
	case keyJSON:
		key = []jen.Code{jen.Var().Id(k).Add(typeCode(kt)), q("UnmarshalJSONKey", p.id("d"), jen.Op("&").Id(k))}
	case keyString:
		key = []jen.Code{jen.Id(k).Op(":=").Add(typeCode(kt)).Call(p.d("Key"))}
	case keyUint:
		key = []jen.Code{jen.Id(k).Op(":=").Add(typeCode(kt)).Call(p.d("UintKey", jen.Lit(bitSize(kt))))}
	case keyInt:
		key = []jen.Code{jen.Id(k).Op(":=").Add(typeCode(kt)).Call(p.d("IntKey", jen.Lit(bitSize(kt))))}
	}
	body := append(key, jen.Var().Id(y).Add(typeCode(u.Elem())))
	body = append(body, p.dec(n.elem, expr{val: jen.Id(y), zero: true})...)
	body = append(body, x.operand().Index(jen.Id(k)).Op("=").Id(y))
	alloc := x.value().Op("=").Make(typeCode(n.t))
	if p.hides("make") {
		alloc = x.value().Op("=").Add(typeCode(n.t)).Values()
	}
	if !x.zero {
		alloc = jen.If(x.value().Op("==").Nil()).Block(alloc)
	}
	return []jen.Code{p.ifNotNull(x, p.d("Object")).Block(alloc, jen.For(p.d("NextMember")).Block(body...))}
}

// bitSize returns the size of an integer type for strconv, 0 for int, uint and uintptr.
func bitSize(t types.Type) int {
	switch t.Underlying().(*types.Basic).Kind() {
	case types.Int8, types.Uint8:
		return 8
	case types.Int16, types.Uint16:
		return 16
	case types.Int32, types.Uint32:
		return 32
	case types.Int64, types.Uint64:
		return 64
	}
	return 0
}

// structDec returns the body of the decoder of a struct type, whose members fs decode.
func (p *printer) structDec(fs []decField) []jen.Code {
	var cases []jen.Code
	for _, f := range fs {
		cases = append(cases, jen.Case(jen.Lit(f.name)).Block(p.decMember(f)...))
	}
	// A key that is not exactly a name is matched again by case folding, as encoding/json
	// does; the switch on constants makes the common exact match cheap.
	cases = append(cases, jen.Default().Block(
		jen.If(p.id("name").Op("=").Add(p.d("Fold", jen.Id("ephemeralFields"+p.self.name), p.id("name"))),
			p.id("name").Op("!=").Nil()).Block(jen.Goto().Id("match")),
		p.d("Skip")))
	return []jen.Code{
		jen.If(jen.Op("!").Add(p.d("Object"))).Block(jen.Return()),
		jen.For(p.id("name").Op(":=").Add(p.d("Member")), p.id("name").Op("!=").Nil(), p.id("name").Op("=").Add(p.d("Member"))).Block(
			jen.Id("match").Op(":"),
			jen.Switch(jen.String().Call(p.id("name"))).Block(cases...)),
	}
}

// decMember decodes the member of field f, allocating the embedded structs it is promoted
// through.
func (ids *Idents) decMember(f decField) []jen.Code {
	var out []jen.Code
	for _, n := range ptrGuards(f.field) {
		sel := ids.selector(f.field, n)
		elem := f.vars[n-1].Type().Underlying().(*types.Pointer).Elem() // exported (see checkField)
		out = append(out, jen.If(jen.Add(sel).Op("==").Nil()).Block(jen.Add(sel).Op("=").Add(ids.newStruct(typeCode(elem)))))
	}
	p := &printer{Idents: ids} // every field's temporaries are local to its own blocks
	return append(out, p.dec(f.node, expr{val: ids.selector(f.field, len(f.vars))})...)
}

// clone returns the statements of plan n, which make x, a copy by assignment, deep.
func (p *printer) clone(n *cloneNode, x expr) []jen.Code {
	if n == nil {
		return nil
	}
	switch n.op {
	case cloneHelper:
		return []jen.Code{jen.Id("ephemeralClone" + n.h.name).Call(x.addr())}
	case cloneRoundTrip:
		return p.roundTrip(n, x)
	case clonePointer:
		c := p.tmp("c")
		body := append([]jen.Code{jen.Id(c).Op(":=").Op("*").Add(x.value())}, p.clone(n.elem, expr{val: jen.Id(c)})...)
		return []jen.Code{jen.If(x.value().Op("!=").Nil()).Block(append(body, x.value().Op("=").Op("&").Id(c))...)}
	case cloneSlice:
		// make and copy, not slices.Clone: the compiler makes the pair one call of
		// runtime.makeslicecopy (which zeroes nothing for elements without pointers), not a
		// growslice with its rounding to a size class, and the copy's capacity is its length
		// (a typed snapshot of 10,000 values with a slice of two strings each: 10 % faster).
		var body []jen.Code
		if p.hides("make") || p.hides("len") || p.hides("copy") {
			body = []jen.Code{x.value().Op("=").Qual("slices", "Clone").Call(x.value())}
		} else {
			c := p.tmp("c")
			body = []jen.Code{
				jen.Id(c).Op(":=").Make(typeCode(n.t), jen.Len(x.value())),
				jen.Copy(jen.Id(c), x.value()),
				x.value().Op("=").Id(c),
			}
		}
		if n.elem != nil {
			body = append(body, p.cloneElems(n.elem, x))
		}
		return []jen.Code{jen.If(x.value().Op("!=").Nil()).Block(body...)}
	case cloneArray:
		return []jen.Code{p.cloneElems(n.elem, x)}
	case cloneMap:
		if n.key == nil && n.elem == nil {
			return []jen.Code{x.value().Op("=").Qual("maps", "Clone").Call(x.value())}
		}
		m, k, y := p.tmp("m"), p.tmp("k"), p.tmp("y")
		body := append(p.clone(n.key, expr{val: jen.Id(k)}), p.clone(n.elem, expr{val: jen.Id(y)})...)
		alloc := jen.Make(typeCode(n.t), jen.Len(x.value()))
		if p.hides("make") || p.hides("len") {
			alloc = jen.Add(typeCode(n.t)).Values()
		}
		return []jen.Code{jen.If(x.value().Op("!=").Nil()).Block(
			jen.Id(m).Op(":=").Add(alloc),
			jen.For(jen.List(jen.Id(k), jen.Id(y)).Op(":=").Range().Add(x.value())).Block(
				append(body, jen.Id(m).Index(jen.Id(k)).Op("=").Id(y))...),
			x.value().Op("=").Id(m))}
	}
	panic("codec: unplanned clone")
}

// cloneElems makes the elements of the slice or array x deep by plan elem.
func (p *printer) cloneElems(elem *cloneNode, x expr) jen.Code {
	i := p.tmp("i")
	return jen.For(jen.Id(i).Op(":=").Range().Add(x.value())).Block(p.clone(elem, expr{val: x.operand().Index(jen.Id(i))})...)
}

// roundTrip returns the body of a helper that makes *v deep by encoding it and decoding the
// result into a new value, which replaces *v if both succeed. A nil value stays nil.
func (p *printer) roundTrip(n *cloneNode, x expr) []jen.Code {
	var out []jen.Code
	if nilable(n.t) {
		out = append(out, jen.If(x.value().Op("==").Nil()).Block(jen.Return()))
	}
	if n.enc == nil { // the methods themselves
		kind := "JSON"
		if n.text {
			kind = "Text"
		}
		return append(out,
			jen.List(p.id("b"), p.id("err")).Op(":=").Add(x.addr()).Dot("Marshal"+kind).Call(),
			jen.If(p.id("err").Op("!=").Nil()).Block(jen.Return()),
			jen.Var().Add(p.id("c")).Add(typeCode(n.t)),
			jen.If(p.id("c").Dot("Unmarshal"+kind).Call(p.id("b")).Op("==").Nil()).Block(x.value().Op("=").Add(p.id("c"))))
	}
	out = append(out, p.id("e").Op(":=").Add(p.newStruct(jen.Qual(JSONCPath, "Encoder"))))
	out = append(out, p.enc(n.enc, x)...)
	out = append(out,
		jen.List(p.id("b"), p.id("err")).Op(":=").Add(p.id("e")).Dot("Finish").Call(),
		jen.If(p.id("err").Op("!=").Nil()).Block(jen.Return()),
		p.id("d").Op(":=").Add(p.newStruct(jen.Qual(JSONCPath, "Decoder"))),
		p.id("d").Dot("Reset").Call(p.id("b")),
		jen.Var().Add(p.id("c")).Add(typeCode(n.t)))
	out = append(out, p.dec(n.dec, expr{val: p.id("c"), zero: true})...)
	return append(out, jen.If(p.d("Finish").Op("==").Nil()).Block(x.value().Op("=").Add(p.id("c"))))
}

// structClone returns the statements that make deep the members fs of a struct, copying each
// embedded pointer they are promoted through from guard depth on; p prints within a guard.
func (ids *Idents) structClone(fs []cloneField, depth int, p *printer) []jen.Code {
	var out []jen.Code
	for i := 0; i < len(fs); {
		fp := p
		if depth == 0 {
			fp = &printer{Idents: ids} // every member's temporaries are local to its own blocks
		}
		gs := ptrGuards(fs[i].field)
		if len(gs) <= depth {
			out = append(out, fp.clone(fs[i].node, expr{val: ids.selector(fs[i].field, len(fs[i].vars))})...)
			i++
			continue
		}
		j := i + 1
		for j < len(fs) && sameGuard(fs[i].field, fs[j].field, depth) {
			j++
		}
		sel, c := ids.selector(fs[i].field, gs[depth]), fp.tmp("c")
		out = append(out, jen.If(sel.Clone().Op("!=").Nil()).Block(append([]jen.Code{
			jen.Id(c).Op(":=").Op("*").Add(sel),
			jen.Add(sel).Op("=").Op("&").Id(c)},
			ids.structClone(fs[i:j], depth+1, fp)...)...))
		i = j
	}
	return out
}
