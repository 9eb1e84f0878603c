package codec

import (
	"go/types"

	"github.com/dave/jennifer/jen"
)

// dec returns the statements that decode the next JSON value into x of type t; quoted tells
// whether the string option applies.
func (c *gen) dec(t types.Type, x expr, quoted bool) []jen.Code {
	t = types.Unalias(t)
	if !c.check(t) {
		return nil
	}
	if quoted {
		return []jen.Code{jen.If(d("Quoted")).Block(append(c.dec(t, x, false), d("Unquote"))...)}
	}
	if p, ok := t.Underlying().(*types.Pointer); ok {
		for _, m := range []struct {
			iface *types.Interface
			fn    string
		}{{unmarshaler, "Unmarshal"}, {textUnmarshaler, "UnmarshalText"}} {
			if implements(t, m.iface) {
				return []jen.Code{c.decNullable(x, jen.If(x.value().Op("==").Nil()).Block(
					x.value().Op("=").New(c.g.typeCode(p.Elem()))),
					q(m.fn, jen.Id("d"), x.value()))}
			}
		}
	} else {
		switch {
		case ptrImplements(t, unmarshaler):
			return []jen.Code{q("Unmarshal", jen.Id("d"), x.addr())}
		case ptrImplements(t, textUnmarshaler):
			s := q("UnmarshalText", jen.Id("d"), x.addr())
			if nilable(t) {
				return []jen.Code{c.decNullable(x, s)}
			}
			return []jen.Code{s}
		}
	}
	if usesHelper(t) {
		h := c.helper(t)
		h.wantDec = true
		return []jen.Code{jen.Id("ephemeralDecode"+h.name).Call(jen.Id("d"), x.addr())}
	}
	return c.decStructural(t, x)
}

// nilable reports whether null sets a value of type t to nil.
func nilable(t types.Type) bool {
	switch t.Underlying().(type) {
	case *types.Pointer, *types.Slice, *types.Map:
		return true
	}
	return false
}

// decNullable returns: if null, set x to nil; else the statements.
func (c *gen) decNullable(x expr, stmts ...jen.Code) jen.Code {
	return jen.If(d("Null")).Block(x.value().Op("=").Nil()).Else().Block(stmts...)
}

var basicDecoders = map[types.BasicKind]string{
	types.Bool: "Bool", types.String: "String",
	types.Int: "Int", types.Int8: "Int8", types.Int16: "Int16", types.Int32: "Int32", types.Int64: "Int64",
	types.Uint: "Uint", types.Uint8: "Uint8", types.Uint16: "Uint16", types.Uint32: "Uint32", types.Uint64: "Uint64",
	types.Uintptr: "Uintptr", types.Float32: "Float32", types.Float64: "Float64",
}

// decStructural decodes into x by the kind of t, ignoring methods.
func (c *gen) decStructural(t types.Type, x expr) []jen.Code {
	switch u := t.Underlying().(type) {
	case *types.Basic:
		m, ok := basicDecoders[u.Kind()]
		if !ok {
			break
		}
		return []jen.Code{d(m, convPtr(t, u.Kind(), x.addr()))}
	case *types.Pointer:
		return []jen.Code{c.decNullable(x,
			jen.If(x.value().Op("==").Nil()).Block(x.value().Op("=").New(c.g.typeCode(u.Elem()))),
			jen.Add(c.dec(u.Elem(), expr{ptr: x.value()}, false)...))}
	case *types.Slice:
		if isByteSlice(t) {
			p := jen.Code(x.addr())
			if !types.Identical(t, byteSlice) {
				p = jen.Parens(jen.Op("*").Index().Byte()).Call(p)
			}
			return []jen.Code{d("Bytes", p)}
		}
		s := c.tmp("s")
		last := jen.Id(s).Index(jen.Len(jen.Id(s)).Op("-").Lit(1))
		return []jen.Code{jen.If(d("Null")).Block(x.value().Op("=").Nil()).Else().If(d("Array")).Block(
			jen.Id(s).Op(":=").Add(x.operand()).Index(jen.Empty(), jen.Lit(0)),
			jen.For(d("NextElem")).Block(append([]jen.Code{
				jen.Id(s).Op("=").Add(q("Grow", jen.Id(s)))},
				c.dec(u.Elem(), expr{val: last}, false)...)...),
			jen.If(jen.Len(jen.Id(s)).Op("==").Lit(0)).Block(jen.Id(s).Op("=").Add(c.g.typeCode(t)).Values()),
			x.value().Op("=").Id(s))}
	case *types.Array:
		i := c.tmp("i")
		return []jen.Code{jen.If(d("Array")).Block(
			jen.Id(i).Op(":=").Lit(0),
			jen.For(d("NextElem")).Block(
				jen.If(jen.Id(i).Op("<").Len(x.operand())).Block(
					c.dec(u.Elem(), expr{val: x.operand().Index(jen.Id(i))}, false)...).Else().Block(d("Skip")),
				jen.Id(i).Op("++")),
			jen.If(jen.Id(i).Op("<").Len(x.operand())).Block(jen.Clear(x.operand().Index(jen.Id(i), jen.Empty()))))}
	case *types.Map:
		return c.decMap(t, u, x)
	case *types.Struct:
		h := c.helper(t)
		h.wantDec = true
		return []jen.Code{jen.Id("ephemeralDecode"+h.name).Call(jen.Id("d"), x.addr())}
	}
	c.unsupported(t)
	return nil
}

func (c *gen) decMap(t types.Type, u *types.Map, x expr) []jen.Code {
	kt := types.Unalias(u.Key())
	k, y := c.tmp("k"), c.tmp("y")
	var key []jen.Code
	kb, _ := kt.Underlying().(*types.Basic)
	switch {
	case implements(types.NewPointer(kt), textUnmarshaler) && !implements(types.NewPointer(kt), unmarshaler):
		key = []jen.Code{jen.Var().Id(k).Add(c.g.typeCode(kt)), q("UnmarshalTextKey", jen.Id("d"), jen.Op("&").Id(k))}
	case kb != nil && kb.Info()&types.IsString != 0:
		key = []jen.Code{jen.Id(k).Op(":=").Add(c.g.typeCode(kt)).Call(d("Key"))}
	case kb != nil && kb.Info()&types.IsUnsigned != 0:
		key = []jen.Code{jen.Id(k).Op(":=").Add(c.g.typeCode(kt)).Call(d("UintKey", jen.Lit(bitSize(kb))))}
	case kb != nil && kb.Info()&types.IsInteger != 0:
		key = []jen.Code{jen.Id(k).Op(":=").Add(c.g.typeCode(kt)).Call(d("IntKey", jen.Lit(bitSize(kb))))}
	default:
		c.report("field %s: unsupported map key type %s (use string, an integer type or a type with MarshalText and UnmarshalText)", c.path, reflectName(kt))
		return nil
	}
	body := append(key, jen.Var().Id(y).Add(c.g.typeCode(u.Elem())))
	body = append(body, c.dec(u.Elem(), expr{val: jen.Id(y)}, false)...)
	body = append(body, x.operand().Index(jen.Id(k)).Op("=").Id(y))
	return []jen.Code{jen.If(d("Null")).Block(x.value().Op("=").Nil()).Else().If(d("Object")).Block(
		jen.If(x.value().Op("==").Nil()).Block(x.value().Op("=").Make(c.g.typeCode(t))),
		jen.For(d("NextMember")).Block(body...))}
}

// bitSize returns the size of an integer kind for strconv, 0 for int, uint and uintptr.
func bitSize(b *types.Basic) int {
	switch b.Kind() {
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

// structDec returns the body of the decoder of struct type t.
func (c *gen) structDec(t types.Type) []jen.Code {
	var cases []jen.Code
	for _, f := range jsonFields(t) {
		cases = append(cases, jen.Case(jen.Lit(f.name)).Block(c.decField(f)...))
	}
	// A key that is not exactly a name is matched again by case folding, as encoding/json
	// does; the switch on constants makes the common exact match cheap.
	cases = append(cases, jen.Default().Block(
		jen.If(jen.Id("name").Op("=").Add(d("Fold", jen.Id("ephemeralFields"+c.self.name), jen.Id("name"))),
			jen.Id("name").Op("!=").Nil()).Block(jen.Goto().Id("match")),
		d("Skip")))
	return []jen.Code{
		jen.If(jen.Op("!").Add(d("Object"))).Block(jen.Return()),
		jen.For(jen.Id("name").Op(":=").Add(d("Member")), jen.Id("name").Op("!=").Nil(), jen.Id("name").Op("=").Add(d("Member"))).Block(
			jen.Id("match").Op(":"),
			jen.Switch(jen.String().Call(jen.Id("name"))).Block(cases...)),
	}
}

func (c *gen) decField(f field) []jen.Code {
	fc := c.fieldContext(f)
	defer c.merge(fc)
	if !fc.checkOptions(f) {
		return []jen.Code{d("Skip")}
	}
	var out []jen.Code
	for _, n := range ptrGuards(f) {
		sel, ok := fc.selector(f, n)
		if !ok {
			return []jen.Code{d("Skip")}
		}
		v := f.vars[n-1]
		elem := v.Type().Underlying().(*types.Pointer).Elem()
		if !v.Exported() {
			out = append(out, jen.If(jen.Add(sel).Op("==").Nil()).Block(
				d("FailEmbedded", jen.Lit(reflectName(elem))),
				jen.Return()))
			continue
		}
		out = append(out, jen.If(jen.Add(sel).Op("==").Nil()).Block(jen.Add(sel).Op("=").New(c.g.typeCode(elem))))
	}
	sel, ok := fc.selector(f, len(f.vars))
	if !ok {
		return []jen.Code{d("Skip")}
	}
	return append(out, fc.dec(f.typ(), expr{val: sel}, f.quoted)...)
}
