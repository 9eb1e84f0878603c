package codec

import (
	"cmp"
	"go/types"
	"reflect"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/tools/go/types/typeutil"
)

// field is one JSON member of a struct, found as encoding/json's typeFields finds it.
type field struct {
	name      string       // JSON name
	tagged    bool         // name came from the tag
	index     []int        // field indexes from the outer struct
	vars      []*types.Var // the fields along index
	omitEmpty bool
	omitZero  bool
	quoted    bool // the string option applies
	quotedOpt bool // the string option is present
}

func (f *field) v() *types.Var   { return f.vars[len(f.vars)-1] }
func (f *field) typ() types.Type { return f.v().Type() }

// jsonFields returns the JSON fields of struct type t in encoding order, with the embedding
// and conflict rules of encoding/json: breadth-first over embedded structs, the dominant field
// by depth and tag wins, ambiguous names are dropped.
func jsonFields(t types.Type) []field {
	type queued struct {
		typ   types.Type
		index []int
		vars  []*types.Var
	}
	var current []queued
	next := []queued{{typ: t}}
	var count, nextCount *typeutil.Map
	var visited typeutil.Map
	var fields []field

	for len(next) > 0 {
		current, next = next, nil
		count, nextCount = nextCount, new(typeutil.Map)
		for _, f := range current {
			if visited.At(f.typ) != nil {
				continue
			}
			visited.Set(f.typ, true)
			st := f.typ.Underlying().(*types.Struct)
			for i := range st.NumFields() {
				sf := st.Field(i)
				if sf.Embedded() {
					et := sf.Type()
					if p, ok := et.Underlying().(*types.Pointer); ok && !isNamed(et) {
						et = p.Elem()
					}
					if _, isStruct := et.Underlying().(*types.Struct); !sf.Exported() && !isStruct {
						continue
					}
				} else if !sf.Exported() {
					continue
				}
				name, opts, skip := jsonTag(st, i)
				if skip {
					continue
				}
				index := append(slices.Clip(f.index), i)
				vars := append(slices.Clip(f.vars), sf)

				ft := types.Unalias(sf.Type())
				if p, ok := ft.(*types.Pointer); ok {
					ft = p.Elem()
				}
				quotedOpt := hasOpt(opts, "string")
				quoted := quotedOpt && quotableKind(ft)

				if _, isStruct := ft.Underlying().(*types.Struct); name != "" || !sf.Embedded() || !isStruct {
					tagged := name != ""
					if name == "" {
						name = sf.Name()
					}
					fields = append(fields, field{
						name: name, tagged: tagged, index: index, vars: vars,
						omitEmpty: hasOpt(opts, "omitempty"), omitZero: hasOpt(opts, "omitzero"),
						quoted: quoted, quotedOpt: quotedOpt,
					})
					if n, _ := countAt(count, f.typ); n > 1 {
						fields = append(fields, fields[len(fields)-1])
					}
					continue
				}
				n, _ := countAt(nextCount, ft)
				nextCount.Set(ft, n+1)
				if n == 0 {
					next = append(next, queued{typ: ft, index: index, vars: vars})
				}
			}
		}
	}

	slices.SortFunc(fields, func(a, b field) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.index), len(b.index)); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return +1
		}
		return slices.Compare(a.index, b.index)
	})
	out := fields[:0]
	for advance, i := 0, 0; i < len(fields); i += advance {
		fi := fields[i]
		for advance = 1; i+advance < len(fields); advance++ {
			if fields[i+advance].name != fi.name {
				break
			}
		}
		if advance == 1 {
			out = append(out, fi)
			continue
		}
		// The first is dominant unless the second is as deep and as tagged.
		if fj := fields[i+1]; len(fi.index) != len(fj.index) || fi.tagged != fj.tagged {
			out = append(out, fi)
		}
	}
	slices.SortFunc(out, func(a, b field) int { return slices.Compare(a.index, b.index) })
	return out
}

// Writes returns the JSON name of the direct field i of the struct type t, by its tag or its
// Go name, and whether encoding/json, and so the codec, writes it: an exported field without
// the tag "-" can still lose its name to another field of t, a shallower or a tagged one, or
// to one as deep and as tagged (and then neither is written).
func Writes(t types.Type, i int) (name string, ok bool) {
	st := t.Underlying().(*types.Struct)
	if name, _, _ = jsonTag(st, i); name == "" {
		name = st.Field(i).Name()
	}
	for _, f := range jsonFields(t) {
		if len(f.index) == 1 && f.index[0] == i {
			return name, true
		}
	}
	return name, false
}

// jsonTag returns the name and the options of the json tag of field i of st, as encoding/json
// reads them (the name "" when the tag gives none, or an invalid one), and whether the tag is
// "-", which leaves the field out.
func jsonTag(st *types.Struct, i int) (name, opts string, skip bool) {
	tag := reflect.StructTag(st.Tag(i)).Get("json")
	if tag == "-" {
		return "", "", true
	}
	name, opts, _ = strings.Cut(tag, ",")
	if !isValidTag(name) {
		name = ""
	}
	return name, opts, false
}

func countAt(m *typeutil.Map, t types.Type) (int, bool) {
	if m == nil {
		return 0, false
	}
	n, ok := m.At(t).(int)
	return n, ok
}

func hasOpt(opts, opt string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == opt {
			return true
		}
	}
	return false
}

// quotableKind reports whether the string option applies to a field of type t.
func quotableKind(t types.Type) bool {
	b, ok := t.Underlying().(*types.Basic)
	return ok && b.Info()&(types.IsBoolean|types.IsInteger|types.IsFloat|types.IsString) != 0 &&
		b.Info()&types.IsUntyped == 0
}

func isValidTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}

func isNamed(t types.Type) bool {
	_, ok := types.Unalias(t).(*types.Named)
	return ok
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
