package codec

import (
	"fmt"
	"go/token"
	"go/types"
	"strconv"

	"github.com/dave/jennifer/jen"
)

// The method sets that encoding/json looks for.
var (
	marshaler       = newIface("MarshalJSON", nil, []types.Type{byteSlice, errorType})
	unmarshaler     = newIface("UnmarshalJSON", []types.Type{byteSlice}, []types.Type{errorType})
	textMarshaler   = newIface("MarshalText", nil, []types.Type{byteSlice, errorType})
	textUnmarshaler = newIface("UnmarshalText", []types.Type{byteSlice}, []types.Type{errorType})
	isZeroer        = newIface("IsZero", nil, []types.Type{types.Typ[types.Bool]})
)

var (
	byteSlice = types.NewSlice(types.Typ[types.Byte])
	errorType = types.Universe.Lookup("error").Type()
)

func newIface(name string, params, results []types.Type) *types.Interface {
	vars := func(ts []types.Type) *types.Tuple {
		vs := make([]*types.Var, len(ts))
		for i, t := range ts {
			vs[i] = types.NewParam(token.NoPos, nil, "", t)
		}
		return types.NewTuple(vs...)
	}
	sig := types.NewSignatureType(nil, nil, nil, vars(params), vars(results), false)
	return types.NewInterfaceType([]*types.Func{types.NewFunc(token.NoPos, nil, name, sig)}, nil).Complete()
}

func implements(t types.Type, iface *types.Interface) bool {
	return types.Implements(t, iface)
}

func ptrImplements(t types.Type, iface *types.Interface) bool {
	if isPointer(t) {
		return false
	}
	return types.Implements(types.NewPointer(t), iface)
}

func isPointer(t types.Type) bool {
	_, ok := t.Underlying().(*types.Pointer)
	return ok
}

func isTime(t types.Type) bool {
	n, ok := types.Unalias(t).(*types.Named)
	return ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == "time" && n.Obj().Name() == "Time"
}

// reflectName spells t as reflect.Type.String does, for error messages.
func reflectName(t types.Type) string {
	return types.TypeString(t, func(p *types.Package) string { return p.Name() })
}

// isByteSlice reports whether encoding/json writes t as base64: a slice of a uint8 kind whose
// pointer has no marshaling methods.
func isByteSlice(t types.Type) bool {
	s, ok := t.Underlying().(*types.Slice)
	if !ok {
		return false
	}
	b, ok := s.Elem().Underlying().(*types.Basic)
	if !ok || b.Kind() != types.Uint8 {
		return false
	}
	p := types.NewPointer(s.Elem())
	return !implements(p, marshaler) && !implements(p, textMarshaler)
}

// typeCode renders t for the generated file.
func typeCode(t types.Type) jen.Code {
	switch t := t.(type) {
	case *types.Alias:
		return typeCode(types.Unalias(t))
	case *types.Basic:
		return jen.Id(t.Name())
	case *types.Named:
		obj := t.Obj()
		var c *jen.Statement
		if obj.Pkg() == nil {
			c = jen.Id(obj.Name())
		} else {
			c = jen.Qual(obj.Pkg().Path(), obj.Name())
		}
		if args := t.TypeArgs(); args != nil && args.Len() > 0 {
			var cs []jen.Code
			for i := range args.Len() {
				cs = append(cs, typeCode(args.At(i)))
			}
			c = c.Types(cs...)
		}
		return c
	case *types.Pointer:
		return jen.Op("*").Add(typeCode(t.Elem()))
	case *types.Slice:
		return jen.Index().Add(typeCode(t.Elem()))
	case *types.Array:
		return jen.Index(jen.Lit(int(t.Len()))).Add(typeCode(t.Elem()))
	case *types.Map:
		return jen.Map(typeCode(t.Key())).Add(typeCode(t.Elem()))
	case *types.Struct:
		var fs []jen.Code
		for i := range t.NumFields() {
			f := t.Field(i)
			var c *jen.Statement
			if f.Embedded() {
				c = jen.Add(typeCode(f.Type()))
			} else {
				c = jen.Id(f.Name()).Add(typeCode(f.Type()))
			}
			if tag := t.Tag(i); tag != "" {
				c = c.Op(strconv.Quote(tag))
			}
			fs = append(fs, c)
		}
		return jen.Struct(fs...)
	}
	return jen.Id(t.String())
}

// unnameable returns why generated code in pkg cannot write type t, or "" if it can: t is, or
// holds in its spelling, a named type that another package does not export (as a type
// argument too), or an unnamed struct type with a field that another package does not export,
// which a struct type literal in pkg cannot declare.
func unnameable(t types.Type, pkg *types.Package) string {
	switch t := types.Unalias(t).(type) {
	case *types.Named:
		if obj := t.Obj(); obj.Pkg() != nil && obj.Pkg() != pkg && !obj.Exported() {
			return fmt.Sprintf("type %s is not exported by its package (export it or tag the field json:\"-\")", reflectName(t))
		}
		for i := range t.TypeArgs().Len() {
			if why := unnameable(t.TypeArgs().At(i), pkg); why != "" {
				return why
			}
		}
	case *types.Struct:
		for f := range t.Fields() {
			if !f.Exported() && f.Pkg() != pkg {
				return fmt.Sprintf("unnamed type %s has the unexported field %s of package %s, which generated code cannot declare (give the type a name in its package, or tag the field json:\"-\")",
					reflectName(t), f.Name(), f.Pkg().Name())
			}
			if why := unnameable(f.Type(), pkg); why != "" {
				return why
			}
		}
	case *types.Pointer:
		return unnameable(t.Elem(), pkg)
	case *types.Slice:
		return unnameable(t.Elem(), pkg)
	case *types.Array:
		return unnameable(t.Elem(), pkg)
	case *types.Map:
		if why := unnameable(t.Key(), pkg); why != "" {
			return why
		}
		return unnameable(t.Elem(), pkg)
	}
	return ""
}
