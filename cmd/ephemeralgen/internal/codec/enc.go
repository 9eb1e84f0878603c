package codec

import (
	"go/types"
	"slices"

	"github.com/dave/jennifer/jen"

	"github.com/ephemeral-go/ephemeral/runtime/jsonc"
)

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

// encBasic encodes x of basic type t.
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

// encMap encodes the map x with its keys sorted as encoding/json sorts them.
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

// encFieldList encodes the fields fs of a struct, nesting those promoted through embedded
// pointers in nil checks from guard depth on.
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

// encField encodes the member of field f.
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
