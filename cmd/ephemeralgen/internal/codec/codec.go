// Package codec emits reflection-free JSON codecs, byte-identical to encoding/json, for the
// struct types of a package, on the primitives of runtime/jsonc.
//
// For an annotated type T, [Generator.Add] registers the exported codec type TCodec, whose
// value-receiver methods Encode and Decode make TCodec{} an ephemeral.Codec[T], and whose Clone
// makes a deep copy of a T. The struct and other composite types that T contains get unexported
// helper functions, named ephemeralEncode<Type>, ephemeralDecode<Type> and ephemeralClone<Type>
// (and a variable ephemeralFields<Type>), <Type> followed by 2, 3, ... where the package
// declares one of these names; each is emitted in exactly one output file of the package. Call
// Add for every type, then [Generator.Emit] for every output file.
//
// The work is done in two steps. Add plans: it walks the types as encoding/json would, reports
// every problem, and builds a plan of how each value is encoded and decoded, and, from the
// decoding plan, deep-copied (plan.go). Emit prints a checked plan as jennifer code (print.go);
// it cannot fail, and it makes no decision that needs a diagnostic.
//
// Clone copies what the decoder fills. It copies a value by assignment, then replaces what the
// copy shares with its source: slices, maps and pointed-to values are copied, recursively;
// strings and the locations of times, which are immutable, are shared. A value that its own
// UnmarshalJSON or UnmarshalText method decodes is copied by assignment if its type holds no
// reference at any depth, else by a round trip: its MarshalJSON and UnmarshalJSON methods (or
// the text ones), or, when it has no encoding method of the kind of its decoding one, the
// codec's encoding and decoding. It does not look for cycles, which no decoded value holds
// (see cloneFacts).
//
// Encoding follows json.Marshal(&v): a MarshalJSON or MarshalText method with a pointer
// receiver is called wherever the value is addressable, that is everywhere except inside map
// values. What the codecs do not support is reported as a diagnostic rather than generated
// differently: the "omitzero" option on a type that is not comparable and has no IsZero method,
// the "string" option on a field of a type with its own JSON or text methods, json.Number,
// named pointer types, slices of named byte types, map keys whose pointer has UnmarshalJSON
// besides UnmarshalText (encoding/json reads them by UnmarshalJSON, with the key quoted), and
// types of other packages that generated code cannot write (an unexported type, an unnamed
// struct type with an unexported field) or promoted fields that it cannot reach. See
// runtime/jsonc for where errors differ.
//
// Call Add for every type before the first Emit, which is only for a package whose Adds
// reported no problem.
package codec

import (
	"fmt"
	"go/token"
	"go/types"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/dave/jennifer/jen"
	"golang.org/x/tools/go/types/typeutil"

	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/diag"
)

// JSONCPath is the import path of the package of JSON primitives that the codecs call.
const JSONCPath = "github.com/ephemeral-go/ephemeral/runtime/jsonc"

// Generator collects the codecs one package needs and emits them into its output files.
type Generator struct {
	fset *token.FileSet
	pkg  *types.Package

	codecs  map[string][]*codec // by output file
	helpers typeutil.Map        // types.Type → *helper
	names   map[string]bool     // names of the helpers' declarations in use
	anon    int                 // unnamed struct types seen
	seen    map[diag.Diagnostic]bool
}

// codec is the plan of one exported codec.
type codec struct {
	t     *types.Named
	name  string
	enc   *encNode
	dec   *decNode
	clone *cloneNode
}

// helper holds the plan of the functions of one contained type.
type helper struct {
	name  string // suffix of the function names
	t     types.Type
	files map[string]bool
	deps  []*helper

	// A struct's members, and its JSON names; or the plan of another type.
	fields             []string
	encFields, encNAFs []encField
	decFields          []decField
	cloneFields        []cloneField
	enc, encNA         *encNode
	dec                *decNode
	clone              *cloneNode // or a round trip

	wantEnc, wantNA bool // which encoders are called
	wantDec         bool
	wantClone       bool // the deep copy is called: a copy by assignment shares memory
	planned         bool // the encoder and decoder are planned
	doneNA          bool
	clonePlanned    bool
}

// New returns a generator for codecs declared in pkg; fset resolves positions.
func New(fset *token.FileSet, pkg *types.Package) *Generator {
	return &Generator{fset: fset, pkg: pkg, codecs: map[string][]*codec{},
		names: map[string]bool{}, seen: map[diag.Diagnostic]bool{}}
}

// Add plans the codec type called name for the struct type t (declared in the package), to be
// emitted in output file file, with everything it needs for the types it contains. It
// returns every problem found (unsupported field types, with the field's path); when there is
// one, the package's codecs must not be emitted.
func (g *Generator) Add(file string, t *types.Named, name string) []diag.Diagnostic {
	var diags []diag.Diagnostic
	p := &planner{g: g, diags: &diags, path: t.Obj().Name(), pos: t.Obj().Pos()}
	cd := &codec{t: t, name: name}
	cd.enc = p.enc(t, true, false)
	cd.dec = p.dec(t, false)
	cd.clone = p.clone(cd.dec)
	g.codecs[file] = append(g.codecs[file], cd)
	for _, h := range p.deps {
		h.use(file)
	}
	return diags
}

// use records that file needs h and everything h needs.
func (h *helper) use(file string) {
	if h.files[file] {
		return
	}
	h.files[file] = true
	for _, d := range h.deps {
		d.use(file)
	}
}

// addDeps records that h calls the helpers ds.
func (h *helper) addDeps(ds []*helper) {
	for _, d := range ds {
		if !slices.Contains(h.deps, d) {
			h.deps = append(h.deps, d)
		}
	}
}

// owner returns the file that emits h: the first in sort order that needs it.
func (h *helper) owner() string {
	files := make([]string, 0, len(h.files))
	for f := range h.files {
		files = append(files, f)
	}
	return slices.Min(files)
}

// Emit writes into f the declarations that belong to output file file: the codecs added for it
// and the helpers of contained types that were assigned to it (each emitted in exactly one
// file of the package), whose parameters and locals ids names. The output is deterministic.
// Call it after every Add.
func (g *Generator) Emit(file string, f *jen.File, ids *Idents) {
	for _, cd := range g.codecs[file] {
		emitCodec(f, cd, ids)
	}
	var hs []*helper
	g.helpers.Iterate(func(_ types.Type, v any) {
		if h := v.(*helper); len(h.files) > 0 && h.owner() == file {
			hs = append(hs, h)
		}
	})
	slices.SortFunc(hs, func(a, b *helper) int { return strings.Compare(a.name, b.name) })
	for _, h := range hs {
		emitHelper(f, h, ids)
	}
}

// emitCodec prints the codec type cd and its methods.
func emitCodec(f *jen.File, cd *codec, ids *Idents) {
	name := cd.t.Obj().Name()
	tc := typeCode(cd.t)
	p := &printer{Idents: ids}
	dst, src, v, e, d := ids.id("dst"), ids.id("src"), ids.id("v"), ids.id("e"), ids.id("d")
	f.Commentf("%s encodes and decodes %s as JSON exactly as encoding/json does, without reflection.", cd.name, name)
	f.Type().Id(cd.name).Struct()
	f.Line()
	f.Comment("Encode appends the JSON encoding of *v to dst and returns the extended buffer.")
	f.Func().Params(jen.Id(cd.name)).Id("Encode").Params(dst.Clone().Index().Byte(), v.Clone().Op("*").Add(tc)).
		Params(jen.Index().Byte(), jen.Error()).Block(append(append([]jen.Code{
		e.Clone().Op(":=").Add(ids.newStruct(jen.Qual(JSONCPath, "Encoder"))),
		e.Clone().Dot("Reset").Call(dst.Clone()),
	}, p.enc(cd.enc, expr{ptr: v.Clone()})...), jen.Return(e.Clone().Dot("Finish").Call()))...)
	f.Line()
	f.Comment("Decode parses the JSON document src into *v.")
	f.Func().Params(jen.Id(cd.name)).Id("Decode").Params(src.Clone().Index().Byte(), v.Clone().Op("*").Add(tc)).
		Error().Block(append(append([]jen.Code{
		d.Clone().Op(":=").Add(ids.newStruct(jen.Qual(JSONCPath, "Decoder"))),
		d.Clone().Dot("Reset").Call(src.Clone()),
	}, p.dec(cd.dec, expr{ptr: v.Clone()})...), jen.Return(d.Clone().Dot("Finish").Call()))...)
	f.Line()
	doc := "Clone makes *dst a deep copy of *src: no slice, map or pointer of *dst shares memory with *src. " +
		"Fields the codec does not encode are copied by assignment."
	roundTrips, cyclic := cloneFacts(cd.clone)
	if roundTrips != nil {
		doc += fmt.Sprintf(" Values of %s, which hold references behind their own JSON or text methods, are "+
			"copied by a round trip through those methods, at its cost; should it fail, they are copied by "+
			"assignment.", joinAnd(roundTrips))
	}
	if cyclic {
		doc += " Clone does not look for cycles, which no decoded value holds and Encode rejects: if *src " +
			"holds itself, through a pointer, slice or map, Clone recurses until the stack overflows, which " +
			"ends the program."
	}
	f.Comment(doc)
	f.Func().Params(jen.Id(cd.name)).Id("Clone").Params(jen.List(dst.Clone(), src.Clone()).Op("*").Add(tc)).
		Block(append([]jen.Code{jen.Op("*").Add(dst.Clone()).Op("=").Op("*").Add(src.Clone())}, p.clone(cd.clone, expr{ptr: dst.Clone()})...)...)
	f.Line()
	if fs := batchFields(cd.clone); fs != nil {
		emitCloneFunc(f, cd, tc, fs, ids)
	}
}

// batchFields returns the members that plan n, the deep copy of a codec's struct, copies, if
// each is a slice of elements copied by assignment reached through no pointer: the function
// of CloneFunc then copies them from blocks that many values share (see emitCloneFunc).
// Otherwise nil.
func batchFields(n *cloneNode) []cloneField {
	if n == nil || n.op != cloneHelper || n.h.clone != nil || len(n.h.cloneFields) == 0 {
		return nil
	}
	for _, f := range n.h.cloneFields {
		if f.node == nil || f.node.op != cloneSlice || f.node.elem != nil || len(ptrGuards(f.field)) > 0 {
			return nil
		}
	}
	return n.h.cloneFields
}

// emitCloneFunc prints the CloneFunc method of codec cd, whose struct's deep copy copies the
// slices fs and nothing else: it returns a Clone for a run of values, with a jsonc.Chunk per
// member, so that a typed snapshot makes an allocation for many values' slices rather than
// one each, in the one pass over its entries that it makes anyway.
func emitCloneFunc(f *jen.File, cd *codec, tc jen.Code, fs []cloneField, ids *Idents) {
	dst, src := ids.Name("dst"), ids.Name("src")
	var decls, body []jen.Code
	for i, fd := range fs {
		c := ids.Name("c" + strconv.Itoa(i))
		elem := fd.node.t.Underlying().(*types.Slice).Elem()
		decls = append(decls, jen.Var().Id(c).Qual(JSONCPath, "Chunk").Types(typeCode(elem)))
		n := len(fd.vars)
		body = append(body, selectorOf(dst, fd.field, n).Op("=").Qual(JSONCPath, "CloneSlice").Call(jen.Op("&").Id(c), selectorOf(src, fd.field, n)))
	}
	f.Comment("CloneFunc returns a function that does what Clone does, for one goroutine's run of copies " +
		"(a snapshot's), with the copies' slices carved from blocks of about 4 KiB that they share " +
		"(jsonc.Chunk): one allocation for many values rather than one each. Appending to a copy's slice " +
		"changes no other; a copy kept alive keeps its blocks alive.")
	fn := jen.Func().Params(jen.List(jen.Id(dst), jen.Id(src)).Op("*").Add(tc)).Block(append([]jen.Code{
		jen.Op("*").Id(dst).Op("=").Op("*").Id(src),
	}, body...)...)
	f.Func().Params(jen.Id(cd.name)).Id("CloneFunc").Params().
		Func().Params(jen.List(jen.Id(dst), jen.Id(src)).Op("*").Add(tc)).
		Block(append(decls, jen.Return(fn))...)
	f.Line()
}

// cloneFacts returns what the documentation of the deep copy of plan n tells: the sorted names
// of the types it copies by a round trip, and whether it calls a helper from within itself, so
// that a value that holds itself, through a pointer, slice or map, makes it recurse without end
// (until the stack overflows). The copy does not look for such a cycle: the store copies only
// values it decoded, which hold none, and the encoder rejects one; looking would cost every
// copy of a recursive type a record of the pointers and maps it copied.
func cloneFacts(n *cloneNode) (roundTrips []string, cyclic bool) {
	const walking, walked = 1, 2
	state := map[*helper]int{}
	var walk func(n *cloneNode)
	walk = func(n *cloneNode) {
		switch {
		case n == nil:
		case n.op == cloneRoundTrip:
			roundTrips = append(roundTrips, reflectName(n.t))
		case n.op == cloneHelper:
			switch state[n.h] {
			case walking:
				cyclic = true
			case 0:
				state[n.h] = walking
				walk(n.h.clone)
				for _, f := range n.h.cloneFields {
					walk(f.node)
				}
				state[n.h] = walked
			}
		default:
			walk(n.key)
			walk(n.elem)
		}
	}
	walk(n)
	slices.Sort(roundTrips)
	return roundTrips, cyclic
}

// joinAnd joins names as a list in English: "a", "a and b", "a, b and c".
func joinAnd(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// emitHelper prints the functions of h that are called.
func emitHelper(f *jen.File, h *helper, ids *Idents) {
	tc := typeCode(h.t)
	v := expr{ptr: ids.id("v")}
	p := func() *printer { return &printer{Idents: ids, self: h} }
	if h.wantDec && h.fields != nil {
		names := make([]jen.Code, len(h.fields))
		for i, n := range h.fields {
			names[i] = jen.Lit(n)
		}
		f.Var().Id("ephemeralFields"+h.name).Op("=").Qual(JSONCPath, "NewFields").Call(names...)
		f.Line()
	}
	encParams := jen.Params(ids.id("e").Op("*").Qual(JSONCPath, "Encoder"), ids.id("v").Op("*").Add(tc))
	if h.wantEnc {
		var enc []jen.Code
		if h.fields != nil {
			enc = ids.structEnc(h.t, h.encFields)
		} else {
			enc = ids.guardRecursion(h.t, p().enc(h.enc, v))
		}
		f.Func().Id("ephemeralEncode" + h.name).Add(encParams).Block(enc...)
		f.Line()
	}
	if h.wantNA {
		var encNA []jen.Code
		if h.fields != nil {
			encNA = ids.structEnc(h.t, h.encNAFs)
		} else {
			encNA = ids.guardRecursion(h.t, p().enc(h.encNA, v))
		}
		f.Func().Id("ephemeralEncode" + h.name + "Value").Add(encParams).Block(encNA...)
		f.Line()
	}
	if h.wantDec {
		var dec []jen.Code
		if h.fields != nil {
			dec = p().structDec(h.decFields)
		} else {
			dec = p().dec(h.dec, v)
		}
		f.Func().Id("ephemeralDecode"+h.name).Params(ids.id("d").Op("*").Qual(JSONCPath, "Decoder"), ids.id("v").Op("*").Add(tc)).
			Block(dec...)
		f.Line()
	}
	if h.wantClone {
		var clone []jen.Code
		if h.clone != nil {
			clone = p().clone(h.clone, v)
		} else {
			clone = ids.structClone(h.cloneFields, 0, nil)
		}
		f.Func().Id("ephemeralClone" + h.name).Params(ids.id("v").Op("*").Add(tc)).Block(clone...)
		f.Line()
	}
}

// helperFor returns the helper of t, planning its functions on first use; p is the planner
// that needs it.
func (g *Generator) helperFor(p *planner, t types.Type) *helper {
	h := g.record(t)
	if h.planned {
		return h
	}
	h.planned = true
	hp := &planner{g: g, diags: p.diags, path: p.path, pos: p.pos, self: h}
	if isStructType(t) {
		h.encFields = hp.structEnc(t, true)
		h.decFields = hp.structDec(t)
		h.fields = []string{}
		for _, f := range jsonFields(t) {
			h.fields = append(h.fields, f.name)
		}
	} else {
		h.enc = hp.encStructural(t, true, false)
		h.dec = hp.decStructural(t)
	}
	h.addDeps(hp.deps)
	return h
}

// record returns the helper of t, which nothing may be planned for yet.
func (g *Generator) record(t types.Type) *helper {
	if h, ok := g.helpers.At(t).(*helper); ok {
		return h
	}
	h := &helper{name: g.helperName(t), t: t, files: map[string]bool{}}
	g.helpers.Set(t, h)
	return h
}

// needNA makes h emit its encoder of non-addressable values, planning it on first use; p is the
// planner that needs it.
func (g *Generator) needNA(p *planner, h *helper) {
	h.wantNA = true
	if h.doneNA {
		return
	}
	h.doneNA = true
	hp := &planner{g: g, diags: p.diags, path: p.path, pos: p.pos, self: h}
	if isStructType(h.t) {
		h.encNAFs = hp.structEnc(h.t, false)
	} else {
		h.encNA = hp.encStructural(h.t, false, false)
	}
	h.addDeps(hp.deps)
}

func isStructType(t types.Type) bool {
	_, ok := t.Underlying().(*types.Struct)
	return ok
}

// helperName returns a deterministic identifier suffix for t that no other type uses.
func (g *Generator) helperName(t types.Type) string {
	var base string
	if n, ok := types.Unalias(t).(*types.Named); ok {
		obj := n.Obj()
		if obj.Pkg() != nil && obj.Pkg() != g.pkg {
			base = upperFirst(obj.Pkg().Name())
		}
		base += upperFirst(obj.Name())
		if args := n.TypeArgs(); args != nil {
			for i := range args.Len() {
				base += identOf(reflectName(args.At(i)))
			}
		}
	} else {
		g.anon++
		base = fmt.Sprintf("Struct%d", g.anon)
	}
	name := base
	for i := 2; !g.free(name); i++ {
		name = fmt.Sprintf("%s%d", base, i)
	}
	for _, f := range helperFuncs {
		g.names[f+name], g.names[f+name+"Value"] = true, true
	}
	return name
}

// helperFuncs are the prefixes of the names of the declarations of a helper, before the name
// of its type; the encoder of values that are not addressable also ends in "Value".
var helperFuncs = []string{"ephemeralEncode", "ephemeralDecode", "ephemeralClone", "ephemeralFields"}

// free reports whether the helpers of a type can be called name: none of the names of their
// declarations is declared in the package or taken by another helper (ephemeralEncodeAValue,
// the encoder of A for values that are not addressable, is also that of a type AValue).
func (g *Generator) free(name string) bool {
	for _, f := range helperFuncs {
		for _, n := range []string{f + name, f + name + "Value"} {
			if g.names[n] || g.pkg.Scope().Lookup(n) != nil {
				return false
			}
		}
	}
	return true
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

func identOf(s string) string {
	var b strings.Builder
	up := true
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if up {
				r = unicode.ToUpper(r)
			}
			b.WriteRune(r)
			up = false
		} else {
			up = true
		}
	}
	return b.String()
}

// recursive reports whether a value of type t can contain another value of type t.
func recursive(t types.Type) bool {
	var seen typeutil.Map
	var reach func(u types.Type) bool
	reach = func(u types.Type) bool {
		u = types.Unalias(u)
		if types.Identical(u, t) {
			return true
		}
		if seen.At(u) != nil {
			return false
		}
		seen.Set(u, true)
		return components(u, reach)
	}
	return components(t, reach)
}

// components calls f on the types that a value of type t directly contains, until f reports
// true.
func components(t types.Type, f func(types.Type) bool) bool {
	switch u := t.Underlying().(type) {
	case *types.Pointer:
		return f(u.Elem())
	case *types.Slice:
		return f(u.Elem())
	case *types.Array:
		return f(u.Elem())
	case *types.Map:
		return f(u.Key()) || f(u.Elem())
	case *types.Struct:
		for i := range u.NumFields() {
			if f(u.Field(i).Type()) {
				return true
			}
		}
	}
	return false
}

// sensitive reports whether encoding a value of type t depends on whether it is addressable:
// it contains, not behind a pointer or slice, a type whose marshaling method has a pointer
// receiver.
func sensitive(t types.Type) bool {
	var seen typeutil.Map
	var walk func(t types.Type) bool
	walk = func(t types.Type) bool {
		if seen.At(t) != nil {
			return false
		}
		seen.Set(t, true)
		if isPointer(t) || implements(t, marshaler) {
			return false
		}
		if ptrImplements(t, marshaler) {
			return true
		}
		if implements(t, textMarshaler) {
			return false
		}
		if ptrImplements(t, textMarshaler) {
			return true
		}
		switch u := t.Underlying().(type) {
		case *types.Array:
			return walk(u.Elem())
		case *types.Struct:
			for _, f := range jsonFields(t) {
				if walk(f.typ()) {
					return true
				}
			}
		}
		return false
	}
	return walk(t)
}
