package codecgen

import (
	"fmt"
	"go/token"
	"go/types"
	"slices"
	"strconv"

	"github.com/dave/jennifer/jen"

	"github.com/ephemeral-go/ephemeral/runtime/jsonc"
)

const supported = "supported: bool, numbers, string, []byte, time.Time, time.Duration, pointers, " +
	"slices, arrays, maps with string or integer keys, structs, json.Marshaler/Unmarshaler, " +
	"encoding.TextMarshaler/TextUnmarshaler; or tag it json:\"-\""

// gen generates the statements of one function body.
type gen struct {
	g     *Generator
	diags *[]Diagnostic
	path  string    // Go path of the value, for diagnostics: "Presence.Meta"
	pos   token.Pos // position to report at
	self  *helper   // the helper being generated, if any
	deps  []*helper // helpers the body calls
	names map[string]int
}

// expr is a Go expression of the value being encoded or decoded: either the value itself
// (addressable) or a pointer to it.
type expr struct {
	val jen.Code
	ptr jen.Code
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

func (c *gen) tmp(prefix string) string {
	if c.names == nil {
		c.names = map[string]int{}
	}
	c.names[prefix]++
	if n := c.names[prefix]; n > 1 {
		return prefix + strconv.Itoa(n)
	}
	return prefix
}

func (c *gen) report(format string, args ...any) {
	d := Diagnostic{Pos: c.g.fset.Position(c.pos), Msg: fmt.Sprintf(format, args...)}
	if !c.g.seen[d] {
		c.g.seen[d] = true
		*c.diags = append(*c.diags, d)
	}
}

func (c *gen) unsupported(t types.Type) {
	c.report("field %s: unsupported type %s (%s)", c.path, reflectName(t), supported)
}

// helper returns the helper of t and records that this body calls it.
func (c *gen) helper(t types.Type) *helper {
	h := c.g.helperFor(c, t)
	if !slices.Contains(c.deps, h) && h != c.self {
		c.deps = append(c.deps, h)
	}
	return h
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

func e(method string, args ...jen.Code) *jen.Statement {
	return jen.Id("e").Dot(method).Call(args...)
}

func d(method string, args ...jen.Code) *jen.Statement {
	return jen.Id("d").Dot(method).Call(args...)
}

func q(name string, args ...jen.Code) *jen.Statement { return jen.Qual(jsoncPath, name).Call(args...) }

func raw(s string) jen.Code { return e("Raw", jen.Id("`"+s+"`")) }

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

// enc returns the statements that encode the value x of type t; addr tells whether encoding/json
// would see it as addressable, quoted whether the string option applies.
func (c *gen) enc(t types.Type, x expr, addr, quoted bool) []jen.Code {
	t = types.Unalias(t)
	if !c.check(t) {
		return nil
	}
	if isTime(t) {
		return []jen.Code{e("Time", x.value())}
	}
	if isPointer(t) {
		for _, m := range []struct {
			iface *types.Interface
			fn    string
		}{{marshaler, "Marshal"}, {textMarshaler, "MarshalText"}} {
			if implements(t, m.iface) {
				return []jen.Code{jen.If(x.value().Op("==").Nil()).Block(e("Null")).Else().Block(
					q(m.fn, jen.Id("e"), jen.Lit(reflectName(t)), x.value()))}
			}
		}
	} else {
		switch {
		case addr && ptrImplements(t, marshaler):
			return []jen.Code{q("Marshal", jen.Id("e"), jen.Lit("*"+reflectName(t)), x.addr())}
		case implements(t, marshaler):
			return []jen.Code{q("Marshal", jen.Id("e"), jen.Lit(reflectName(t)), x.value())}
		case addr && ptrImplements(t, textMarshaler):
			return []jen.Code{q("MarshalText", jen.Id("e"), jen.Lit("*"+reflectName(t)), x.addr())}
		case implements(t, textMarshaler):
			return []jen.Code{q("MarshalText", jen.Id("e"), jen.Lit(reflectName(t)), x.value())}
		}
	}
	if usesHelper(t) {
		h := c.helper(t)
		name := "ephemeralEncode" + h.name
		if !addr && sensitive(t) {
			c.g.needNA(c, h)
			name += "Value"
		} else {
			h.wantEnc = true
		}
		return []jen.Code{jen.Id(name).Call(jen.Id("e"), x.addr())}
	}
	return c.encStructural(t, x, addr, quoted)
}

// check reports t if no code can be generated for it, and returns false then.
func (c *gen) check(t types.Type) bool {
	switch u := t.Underlying().(type) {
	case *types.Basic:
		if u.Info()&(types.IsBoolean|types.IsInteger|types.IsFloat|types.IsString) == 0 || u.Info()&types.IsUntyped != 0 {
			c.unsupported(t)
			return false
		}
	case *types.Interface, *types.Signature, *types.Chan, *types.TypeParam:
		c.unsupported(t)
		return false
	case *types.Pointer:
		if isNamed(t) {
			c.report("field %s: unsupported named pointer type %s (use *%s)", c.path, reflectName(t), reflectName(u.Elem()))
			return false
		}
	case *types.Slice:
		if b, ok := u.Elem().Underlying().(*types.Basic); ok && b.Kind() == types.Uint8 && isNamed(u.Elem()) && isByteSlice(t) {
			c.report("field %s: unsupported slice of named byte type %s (use []byte)", c.path, reflectName(t))
			return false
		}
	}
	if n, ok := t.(*types.Named); ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == "encoding/json" && n.Obj().Name() == "Number" {
		c.report("field %s: unsupported type json.Number (use float64, int64 or string)", c.path)
		return false
	}
	if !accessible(t, c.g.pkg) {
		c.report("field %s: type %s is not exported by its package (export it or tag the field json:\"-\")", c.path, reflectName(t))
		return false
	}
	return true
}

// encStructural encodes x by the kind of t, ignoring methods.
func (c *gen) encStructural(t types.Type, x expr, addr, quoted bool) []jen.Code {
	switch u := t.Underlying().(type) {
	case *types.Basic:
		return c.encBasic(t, u, x, quoted)
	case *types.Pointer:
		return []jen.Code{jen.If(x.value().Op("==").Nil()).Block(e("Null")).Else().Block(
			c.enc(u.Elem(), expr{ptr: x.value()}, true, quoted)...)}
	case *types.Slice:
		if isByteSlice(t) {
			b := jen.Code(x.value())
			if !types.Identical(t, byteSlice) {
				b = jen.Index().Byte().Call(b)
			}
			return []jen.Code{e("Bytes", b)}
		}
		i := c.tmp("i")
		return []jen.Code{jen.If(x.value().Op("==").Nil()).Block(e("Null")).Else().Block(
			e("Byte", jen.LitRune('[')),
			jen.For(jen.Id(i).Op(":=").Range().Add(x.value())).Block(append([]jen.Code{
				jen.If(jen.Id(i).Op(">").Lit(0)).Block(e("Byte", jen.LitRune(',')))},
				c.enc(u.Elem(), expr{val: x.operand().Index(jen.Id(i))}, true, false)...)...),
			e("Byte", jen.LitRune(']')))}
	case *types.Array:
		if u.Len() == 0 {
			return []jen.Code{raw("[]")}
		}
		i := c.tmp("i")
		return []jen.Code{
			e("Byte", jen.LitRune('[')),
			jen.For(jen.Id(i).Op(":=").Range().Add(x.value())).Block(append([]jen.Code{
				jen.If(jen.Id(i).Op(">").Lit(0)).Block(e("Byte", jen.LitRune(',')))},
				c.enc(u.Elem(), expr{val: x.operand().Index(jen.Id(i))}, addr, false)...)...),
			e("Byte", jen.LitRune(']'))}
	case *types.Map:
		return c.encMap(t, u, x)
	case *types.Struct:
		h := c.helper(t)
		h.wantEnc = true
		return []jen.Code{jen.Id("ephemeralEncode"+h.name).Call(jen.Id("e"), x.addr())}
	}
	c.unsupported(t)
	return nil
}

func (c *gen) encBasic(t types.Type, u *types.Basic, x expr, quoted bool) []jen.Code {
	var s jen.Code
	info := u.Info()
	switch {
	case info&types.IsBoolean != 0:
		s = e("Bool", conv(t, types.Bool, x.value()))
	case info&types.IsUnsigned != 0:
		s = e("Uint", conv(t, types.Uint64, x.value()))
	case info&types.IsInteger != 0:
		s = e("Int", conv(t, types.Int64, x.value()))
	case u.Kind() == types.Float32:
		s = e("Float32", conv(t, types.Float32, x.value()))
	case info&types.IsFloat != 0:
		s = e("Float64", conv(t, types.Float64, x.value()))
	case quoted:
		return []jen.Code{e("QuotedString", conv(t, types.String, x.value()))}
	default:
		return []jen.Code{e("String", conv(t, types.String, x.value()))}
	}
	if quoted {
		return []jen.Code{e("Byte", jen.LitRune('"')), s, e("Byte", jen.LitRune('"'))}
	}
	return []jen.Code{s}
}

func (c *gen) encMap(t types.Type, u *types.Map, x expr) []jen.Code {
	kt := types.Unalias(u.Key())
	k, y := c.tmp("k"), c.tmp("y")
	var keys, key, elem jen.Code
	kb, _ := kt.Underlying().(*types.Basic)
	switch {
	case kb != nil && kb.Info()&types.IsString != 0:
		keys = q("SortedKeys", x.value())
		key = e("String", conv(kt, types.String, jen.Id(k)))
		elem = x.operand().Index(jen.Id(k))
	case kb != nil && kb.Info()&types.IsUnsigned != 0:
		keys = q("SortedUintKeys", x.value())
		key = e("UintKey", conv(kt, types.Uint64, jen.Id(k)))
		elem = x.operand().Index(jen.Id(k))
	case kb != nil && kb.Info()&types.IsInteger != 0:
		keys = q("SortedIntKeys", x.value())
		key = e("IntKey", conv(kt, types.Int64, jen.Id(k)))
		elem = x.operand().Index(jen.Id(k))
	case implements(kt, textMarshaler):
		keys = q("SortedTextKeys", jen.Id("e"), jen.Lit(reflectName(kt)), x.value())
		key = e("String", jen.Id(k).Dot("Text"))
		elem = x.operand().Index(jen.Id(k).Dot("Key"))
	default:
		c.report("field %s: unsupported map key type %s (use string, an integer type or a type with MarshalText and UnmarshalText)", c.path, reflectName(kt))
		return nil
	}
	i := c.tmp("i")
	return []jen.Code{jen.If(x.value().Op("==").Nil()).Block(e("Null")).Else().Block(
		e("Byte", jen.LitRune('{')),
		jen.For(jen.List(jen.Id(i), jen.Id(k)).Op(":=").Range().Add(keys)).Block(append([]jen.Code{
			jen.If(jen.Id(i).Op(">").Lit(0)).Block(e("Byte", jen.LitRune(','))),
			key,
			e("Byte", jen.LitRune(':')),
			jen.Id(y).Op(":=").Add(elem)},
			c.enc(u.Elem(), expr{val: jen.Id(y)}, false, false)...)...),
		e("Byte", jen.LitRune('}')))}
}

// guardRecursion wraps the body of a helper for a recursive type in Enter and Leave.
func (c *gen) guardRecursion(t types.Type, body []jen.Code) []jen.Code {
	if !recursive(t) {
		return body
	}
	key := jen.Nil()
	if isStructType(t) {
		key = jen.Id("v")
	}
	out := []jen.Code{jen.If(jen.Op("!").Add(e("Enter", key, jen.Lit("*"+reflectName(t))))).Block(jen.Return())}
	out = append(out, body...)
	return append(out, e("Leave", key))
}

// emitState tracks, while generating a struct encoder, what is known about the members
// written so far.
type emitState struct {
	open  bool // the { is written
	state int  // none, some, or unknown members written
}

const (
	noneWritten = iota
	someWritten
	maybeWritten
)

// structEnc returns the body of the encoder of struct type t.
func (c *gen) structEnc(t types.Type, addr bool) []jen.Code {
	fields := jsonFields(t)
	s := &emitState{}
	body := c.encFieldList(fields, 0, addr, s)
	if s.open {
		body = append(body, e("Byte", jen.LitRune('}')))
	} else {
		body = append(body, raw("{}"))
	}
	return c.guardRecursion(t, body)
}

// ptrGuards returns the lengths of the index prefixes of f that end at an embedded pointer.
func ptrGuards(f field) []int {
	var gs []int
	for i, v := range f.vars[:len(f.vars)-1] {
		if isPointer(v.Type()) {
			gs = append(gs, i+1)
		}
	}
	return gs
}

// selector returns v.A.B... for the first n fields of f.
func (c *gen) selector(f field, n int) (*jen.Statement, bool) {
	s := jen.Id("v")
	for _, v := range f.vars[:n] {
		if !v.Exported() && v.Pkg() != c.g.pkg {
			c.report("field %s.%s: promoted through the unexported embedded field %s of package %s, which generated code cannot reach (tag it json:\"-\")",
				c.path, f.v().Name(), v.Name(), v.Pkg().Name())
			return nil, false
		}
		s = s.Dot(v.Name())
	}
	return s, true
}

func (c *gen) encFieldList(fs []field, depth int, addr bool, s *emitState) []jen.Code {
	var out []jen.Code
	for i := 0; i < len(fs); {
		gs := ptrGuards(fs[i])
		if len(gs) <= depth {
			out = append(out, c.encField(fs[i], addr, s)...)
			i++
			continue
		}
		n := gs[depth]
		j := i + 1
		for j < len(fs) {
			gj := ptrGuards(fs[j])
			if len(gj) <= depth || gj[depth] != n || !slices.Equal(fs[j].index[:n], fs[i].index[:n]) {
				break
			}
			j++
		}
		sel, ok := c.selector(fs[i], n)
		if !ok {
			i = j
			continue
		}
		if !s.open {
			out = append(out, e("Byte", jen.LitRune('{')))
			s.open = true
		}
		before := s.state
		inner := c.encFieldList(fs[i:j], depth+1, addr, s)
		out = append(out, jen.If(sel.Op("!=").Nil()).Block(inner...))
		if before != someWritten {
			s.state = maybeWritten
		}
		i = j
	}
	return out
}

func (c *gen) fieldContext(f field) *gen {
	fc := *c
	fc.path = c.path + "." + f.v().Name()
	if f.v().Pkg() == c.g.pkg && f.v().Pos().IsValid() {
		fc.pos = f.v().Pos()
	}
	return &fc
}

// merge takes back the temporary names and helpers a field context used.
func (c *gen) merge(fc *gen) {
	c.names = fc.names
	for _, h := range fc.deps {
		if !slices.Contains(c.deps, h) {
			c.deps = append(c.deps, h)
		}
	}
}

func (c *gen) checkOptions(f field) bool {
	t := f.typ()
	if f.omitZero {
		c.report("field %s: the omitzero option is not supported (use omitempty)", c.path)
		return false
	}
	if f.quoted {
		base := types.Unalias(t)
		if p, ok := base.(*types.Pointer); ok {
			base = p.Elem()
		}
		for _, i := range []*types.Interface{marshaler, unmarshaler, textMarshaler, textUnmarshaler} {
			if implements(base, i) || implements(types.NewPointer(base), i) {
				c.report("field %s: the string option on type %s, which has its own JSON or text methods, is not supported (remove the option)", c.path, reflectName(t))
				return false
			}
		}
	}
	return true
}

func (c *gen) encField(f field, addr bool, s *emitState) []jen.Code {
	fc := c.fieldContext(f)
	defer c.merge(fc)
	if !fc.checkOptions(f) {
		return nil
	}
	t := types.Unalias(f.typ())
	sel, ok := fc.selector(f, len(f.vars))
	if !ok {
		return nil
	}
	var cond jen.Code
	var omit bool
	if f.omitEmpty {
		cond, omit = fc.emptyCheck(t, sel)
	}
	if omit {
		return nil
	}
	faddr := addr || len(ptrGuards(f)) > 0
	var value []jen.Code
	if p, ok := t.(*types.Pointer); ok && cond != nil && !implements(t, marshaler) && !implements(t, textMarshaler) {
		value = fc.enc(p.Elem(), expr{ptr: sel}, true, f.quoted) // omitempty checked it is not nil
	} else {
		value = fc.enc(t, expr{val: sel}, faddr, f.quoted)
	}
	key := string(jsonc.AppendString(nil, f.name)) + ":"
	if cond == nil {
		return append([]jen.Code{s.key(key)}, value...)
	}
	var out []jen.Code
	if !s.open {
		out = append(out, e("Byte", jen.LitRune('{')))
		s.open = true
	}
	before := s.state
	out = append(out, jen.If(cond).Block(append([]jen.Code{s.key(key)}, value...)...))
	if before != someWritten {
		s.state = maybeWritten
	}
	return out
}

// key writes the member key k in state s.
func (s *emitState) key(k string) jen.Code {
	defer func() { s.state = someWritten }()
	switch {
	case s.state == noneWritten && !s.open:
		s.open = true
		return raw("{" + k)
	case s.state == noneWritten:
		return raw(k)
	case s.state == someWritten:
		return raw("," + k)
	}
	return e("Key", jen.Id("`"+k+"`"))
}

// emptyCheck returns the condition under which an omitempty field x is written, nil if always,
// or omit if never.
func (c *gen) emptyCheck(t types.Type, x *jen.Statement) (cond jen.Code, omit bool) {
	switch u := t.Underlying().(type) {
	case *types.Basic:
		info := u.Info()
		switch {
		case info&types.IsBoolean != 0:
			return x, false
		case info&types.IsString != 0:
			return jen.Add(x).Op("!=").Lit(""), false
		default:
			return jen.Add(x).Op("!=").Lit(0), false
		}
	case *types.Pointer:
		return jen.Add(x).Op("!=").Nil(), false
	case *types.Slice, *types.Map:
		return jen.Len(x).Op("!=").Lit(0), false
	case *types.Array:
		return nil, u.Len() == 0
	}
	return nil, false
}
