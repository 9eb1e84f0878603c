package codec

import (
	"go/token"
	"go/types"
	"slices"
	"strconv"

	"github.com/dave/jennifer/jen"

	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/diag"
)

const supported = "supported: bool, numbers, string, []byte, time.Time, time.Duration, pointers, " +
	"slices, arrays, maps with string or integer keys, structs, json.Marshaler/Unmarshaler, " +
	"encoding.TextMarshaler/TextUnmarshaler; or tag it json:\"-\""

// gen generates the statements of one function body.
type gen struct {
	g     *Generator
	diags *[]diag.Diagnostic
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

// tmp returns a new local variable name.
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

// report records a diagnostic at the current position.
func (c *gen) report(format string, args ...any) {
	d := diag.Errorf(c.g.fset.Position(c.pos), format, args...)
	if !c.g.seen[d] {
		c.g.seen[d] = true
		*c.diags = append(*c.diags, d)
	}
}

// unsupported reports that t is not supported.
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

// e calls the encoder method.
func e(method string, args ...jen.Code) *jen.Statement {
	return jen.Id("e").Dot(method).Call(args...)
}

// d calls the decoder method.
func d(method string, args ...jen.Code) *jen.Statement {
	return jen.Id("d").Dot(method).Call(args...)
}

// q calls the jsonc function.
func q(name string, args ...jen.Code) *jen.Statement { return jen.Qual(jsoncPath, name).Call(args...) }

// raw writes s verbatim.
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

// fieldContext returns the context of field f: its path and, in this package, its position.
func (c *gen) fieldContext(f field) *gen {
	fc := *c
	fc.names = nil // every field's temporaries are local to its own blocks
	fc.path = c.path + "." + f.v().Name()
	if f.v().Pkg() == c.g.pkg && f.v().Pos().IsValid() {
		fc.pos = f.v().Pos()
	}
	return &fc
}

// merge takes back the helpers a field context used.
func (c *gen) merge(fc *gen) {
	for _, h := range fc.deps {
		if !slices.Contains(c.deps, h) {
			c.deps = append(c.deps, h)
		}
	}
}

// checkOptions reports the options of f that the codecs do not support.
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
