// Package emit writes the Go code of ephemeralgen's output files with jennifer: key types and
// builders, the store alias and its constructor, and (through package codec) the codecs of the
// annotated types.
package emit

import (
	"bytes"
	"fmt"
	"go/parser"
	"go/token"
	"go/types"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dave/jennifer/jen"
	"golang.org/x/tools/imports"

	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/codec"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/directive"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/load"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/model"
)

// RootPath is the import path of package ephemeral, which generated code calls.
const RootPath = "github.com/ephemeral-go/ephemeral"

// File renders the output file named file (a base name, such as presence_ephemeral.go) of the
// stores declared in one source file of pkg; goBuild is that file's //go:build line, if any,
// which the output repeats; codecs holds the codecs of the package's stores. The output is
// gofmt-formatted and depends only on its inputs.
func File(pkg *types.Package, file, goBuild string, stores []*model.Store, codecs *codec.Generator) ([]byte, error) {
	headers := []string{strings.TrimPrefix(load.Header, "// ")}
	if goBuild != "" {
		headers = append(headers, goBuild)
	}
	f := jen.NewFilePathName(pkg.Path(), pkg.Name())
	build(f, pkg, file, stores, codecs, headers...)
	src, err := Render(f)
	if err != nil {
		return nil, fmt.Errorf("rendering %s: %w", file, err)
	}
	return src, nil
}

// build emits into f the declarations of the output file named file (see [File]).
func build(f *jen.File, pkg *types.Package, file string, stores []*model.Store, codecs *codec.Generator, headers ...string) {
	values := make([]types.Type, len(stores))
	for i, s := range stores {
		values[i] = s.Type
	}
	names := addImports(f, pkg, values, headers...)
	ids := codec.NewIdents(pkg, names)
	for _, s := range stores {
		if s.KeyFields != nil {
			keyDecls(f, s, names[RootPath], ids)
		}
		storeDecls(f, s, ids)
	}
	codecs.Emit(file, f, ids)
}

// Hidden returns, sorted, the predeclared identifiers (nil, error, string, len, ...) that the
// code of the output file named file (see [File]) refers to and that pkg declares at package
// scope, where the code would refer to pkg's declarations instead. (It does without some
// predeclared functions that pkg hides, which are not among them; see codec.Idents.)
//
// It renders the file as if it were in another package, so that the names of pkg are
// qualified: the identifiers of the universe that the file leaves unresolved are then the
// predeclared ones it uses.
func Hidden(pkg *types.Package, file string, stores []*model.Store, codecs *codec.Generator) ([]string, error) {
	f := jen.NewFilePathName(pkg.Path()+"/ephemeralgen.invalid", pkg.Name())
	f.ImportAlias(pkg.Path(), "ephemeralgenself")
	build(f, pkg, file, stores, codecs)
	var buf bytes.Buffer
	if err := f.Render(&buf); err != nil {
		return nil, fmt.Errorf("rendering %s: %w", file, err)
	}
	syntax, err := parser.ParseFile(token.NewFileSet(), file, buf.Bytes(), 0)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", file, err)
	}
	hidden := map[string]bool{}
	for _, id := range syntax.Unresolved {
		if types.Universe.Lookup(id.Name) != nil && pkg.Scope().Lookup(id.Name) != nil {
			hidden[id.Name] = true
		}
	}
	return slices.Sorted(maps.Keys(hidden)), nil
}

// NewFile returns an empty output file of package pkg with the given header comments, in which
// the imports that code for the value types may use have names: package ephemeral,
// runtime/jsonc, maps, slices, time, and the packages of the types that the values contain.
// Each import is named as its package unless the package scope, or an import before it in path
// order, has that name, or the name is predeclared (an import copy would hide the function copy
// from the file) or one that jennifer, which writes the file, renames (err); then it is the
// first of name2, name3, ... that is none of these. NewFile returns the import names by path.
func NewFile(pkg *types.Package, values []types.Type, headers ...string) (*jen.File, map[string]string) {
	f := jen.NewFilePathName(pkg.Path(), pkg.Name())
	return f, addImports(f, pkg, values, headers...)
}

// addImports adds the headers and the imports to f, as [NewFile] does, and returns the
// import names by path.
func addImports(f *jen.File, pkg *types.Package, values []types.Type, headers ...string) map[string]string {
	for _, h := range headers {
		f.HeaderComment(h)
	}
	imports := map[string]string{RootPath: "ephemeral", codec.JSONCPath: "jsonc", "maps": "maps", "slices": "slices", "time": "time"}
	seen := map[types.Type]bool{}
	for _, t := range values {
		packagesOf(t, pkg, imports, seen)
	}
	taken := map[string]bool{}
	names := map[string]string{}
	for _, imp := range slices.Sorted(maps.Keys(imports)) {
		base := imports[imp]
		name := base
		for i := 2; taken[name] || pkg.Scope().Lookup(name) != nil || types.Universe.Lookup(name) != nil || jen.IsReservedWord(name); i++ {
			name = base + strconv.Itoa(i)
		}
		taken[name], names[imp] = true, name
		if name != path.Base(imp) {
			f.ImportAlias(imp, name)
		} else {
			f.ImportName(imp, name)
		}
	}
	return names
}

// packagesOf adds to imports the paths and names of the packages, other than pkg, of the named
// types that values of type t contain.
func packagesOf(t types.Type, pkg *types.Package, imports map[string]string, seen map[types.Type]bool) {
	if seen[t] {
		return
	}
	seen[t] = true
	if n, ok := types.Unalias(t).(*types.Named); ok {
		if p := n.Obj().Pkg(); p != nil && p != pkg {
			imports[p.Path()] = p.Name()
		}
		if args := n.TypeArgs(); args != nil {
			for a := range args.Types() {
				packagesOf(a, pkg, imports, seen)
			}
		}
	}
	switch u := t.Underlying().(type) {
	case *types.Pointer:
		packagesOf(u.Elem(), pkg, imports, seen)
	case *types.Slice:
		packagesOf(u.Elem(), pkg, imports, seen)
	case *types.Array:
		packagesOf(u.Elem(), pkg, imports, seen)
	case *types.Map:
		packagesOf(u.Key(), pkg, imports, seen)
		packagesOf(u.Elem(), pkg, imports, seen)
	case *types.Struct:
		for f := range u.Fields() {
			packagesOf(f.Type(), pkg, imports, seen)
		}
	}
}

// Render writes the source of f: gofmt-formatted, with the standard library's imports apart
// from the others, and comment lines rewrapped to at most maxLine characters.
func Render(f *jen.File) ([]byte, error) {
	var buf bytes.Buffer
	if err := f.Render(&buf); err != nil {
		return nil, err
	}
	return imports.Process("", wrapComments(buf.Bytes()), &imports.Options{FormatOnly: true, Comments: true, TabIndent: true, TabWidth: 8})
}

// maxLine is the length of the longest comment line Render writes, in characters.
const maxLine = 100

// wrapComments rewraps the lines of src that are // comments longer than maxLine characters,
// with their indentation.
func wrapComments(src []byte) []byte {
	var out bytes.Buffer
	for line := range bytes.Lines(src) {
		text := strings.TrimSuffix(string(line), "\n")
		code := strings.TrimLeft(text, "\t")
		indent := text[:len(text)-len(code)]
		body, ok := strings.CutPrefix(code, "// ")
		if !ok || utf8.RuneCountInString(text) <= maxLine {
			out.Write(line)
			continue
		}
		cur := indent + "//"
		for _, w := range strings.Fields(body) {
			if cur != indent+"//" && utf8.RuneCountInString(cur)+1+utf8.RuneCountInString(w) > maxLine {
				out.WriteString(cur + "\n")
				cur = indent + "//"
			}
			cur += " " + w
		}
		out.WriteString(cur + "\n")
	}
	return out.Bytes()
}

// eph refers to the declaration name of package ephemeral.
func eph(name string) *jen.Statement { return jen.Qual(RootPath, name) }

// keyDecls emits <Name>Key with String, Parse<Name>Key, the prefix builders and EphemeralKey;
// root is the name package ephemeral is imported as, ids names the parser's locals.
func keyDecls(f *jen.File, s *model.Store, root string, ids *codec.Idents) {
	typeName := s.Type.Obj().Name()
	key := s.Ident("Key")
	fieldNames := make([]string, len(s.KeyFields))
	for i, kf := range s.KeyFields {
		fieldNames[i] = kf.Name
	}

	if len(fieldNames) == 1 {
		f.Commentf("%s is the key of %s %s in store %q: its field %s.", key, article(typeName), typeName, s.ID, fieldNames[0])
	} else {
		f.Commentf("%s is the key of %s %s in store %q: its fields %s, in this order.", key, article(typeName), typeName, s.ID, joinAnd(fieldNames))
	}
	f.Type().Id(key).StructFunc(func(g *jen.Group) {
		for _, kf := range s.KeyFields {
			g.Id(kf.Name).Add(typeRef(kf.Type))
		}
	})

	if len(s.KeyFields) == 1 {
		f.Comment("String returns the key's string form: its field, escaped.")
	} else {
		f.Comment("String returns the key's string form: the fields, each escaped, joined with \":\".")
	}
	f.Func().Params(jen.Id("k").Id(key)).Id("String").Params().String().Block(
		jen.Return(eph("JoinKey").CallFunc(func(g *jen.Group) {
			for _, kf := range s.KeyFields {
				g.Add(formatPart(kf, jen.Id("k").Dot(kf.Name)))
			}
		})),
	)

	parse := s.Func("Parse", "Key")
	f.Commentf("%s parses the string form of %s %s. It accepts exactly the strings %s.String returns.", parse, article(key), key, key)
	// The parser converts to the key fields' types, which its locals must not hide.
	str, parts, err := ids.Name("s"), ids.Name("p"), ids.Name("err")
	f.Func().Id(parse).Params(jen.Id(str).String()).Params(jen.Id(key), jen.Error()).BlockFunc(func(g *jen.Group) {
		g.List(jen.Id(parts), jen.Id(err)).Op(":=").Add(eph("SplitKey")).Call(jen.Id(str), jen.Lit(len(s.KeyFields)))
		g.If(jen.Id(err).Op("!=").Nil()).Block(jen.Return(jen.Id(key).Values(), jen.Id(err)))
		var values []jen.Code
		for i, kf := range s.KeyFields {
			part := jen.Id(parts).Index(jen.Lit(i))
			if kf.Kind == model.KeyString {
				values = append(values, field(kf.Name, convert(kf.Type, types.Typ[types.String], part)))
				continue
			}
			n := ids.Name("n" + strconv.Itoa(i))
			fn, wide := "ParseKeyInt", types.Typ[types.Int64]
			if kf.Kind == model.KeyUint {
				fn, wide = "ParseKeyUint", types.Typ[types.Uint64]
			}
			g.List(jen.Id(n), jen.Id(err)).Op(":=").Add(eph(fn)).Call(part, jen.Lit(kf.Bits))
			g.If(jen.Id(err).Op("!=").Nil()).Block(jen.Return(jen.Id(key).Values(), jen.Id(err)))
			values = append(values, field(kf.Name, convert(kf.Type, wide, jen.Id(n))))
		}
		g.Return(jen.Id(key).Values(values...), jen.Nil())
	})

	for k := 1; k < len(s.KeyFields); k++ {
		lead := s.KeyFields[:k]
		params := make([]string, k)
		for i, kf := range lead {
			params[i] = paramName(kf.Name, root)
		}
		name := s.KeyPrefixFunc(k)
		f.Commentf("%s returns the key prefix of the %s entries whose %s %s; pass it to ephemeral.WithPrefix.", name, typeName, joinAnd(fieldNames[:k]), agree(k, "is", "are")+" "+joinAnd(params))
		f.Func().Id(name).ParamsFunc(func(g *jen.Group) {
			for i, kf := range lead {
				g.Id(params[i]).Add(typeRef(kf.Type))
			}
		}).String().Block(
			jen.Return(eph("JoinKeyPrefix").CallFunc(func(g *jen.Group) {
				for i, kf := range lead {
					g.Add(formatPart(kf, jen.Id(params[i])))
				}
			})),
		)
	}

	f.Commentf("EphemeralKey returns the key of v in store %q.", s.ID)
	f.Func().Params(jen.Id("v").Add(typeRef(s.Type))).Id("EphemeralKey").Params().Id(key).Block(
		jen.Return(jen.Id(key).ValuesFunc(func(g *jen.Group) {
			for _, kf := range s.KeyFields {
				g.Add(field(kf.Name, jen.Id("v").Dot(kf.Name)))
			}
		})),
	)
}

// field is the element name: value of a composite literal.
func field(name string, value jen.Code) jen.Code { return jen.Id(name).Op(":").Add(value) }

// formatPart converts key field value v to its key part.
func formatPart(kf model.KeyField, v *jen.Statement) jen.Code {
	switch kf.Kind {
	case model.KeyInt:
		return eph("FormatKeyInt").Call(convert(types.Typ[types.Int64], kf.Type, v))
	case model.KeyUint:
		return eph("FormatKeyUint").Call(convert(types.Typ[types.Uint64], kf.Type, v))
	}
	return convert(types.Typ[types.String], kf.Type, v)
}

// convert returns v, of type from, converted to type to; v itself when they are identical.
func convert(to, from types.Type, v *jen.Statement) jen.Code {
	if types.Identical(to, from) {
		return v
	}
	return typeRef(to).Call(v)
}

// typeRef refers to t, a basic type or a named type (or alias) of a basic type.
func typeRef(t types.Type) *jen.Statement {
	var obj *types.TypeName
	switch t := t.(type) {
	case *types.Basic:
		return jen.Id(t.Name())
	case *types.Named:
		obj = t.Obj()
	case *types.Alias:
		obj = t.Obj()
	default:
		panic(fmt.Sprintf("emit: unexpected key field type %s", t))
	}
	if obj.Pkg() == nil {
		return jen.Id(obj.Name())
	}
	return jen.Qual(obj.Pkg().Path(), obj.Name()) // rendered unqualified in its own package
}

// storeDecls emits the store type of s, an alias of ephemeral.Store, and its constructor, whose
// parameters ids names.
func storeDecls(f *jen.File, s *model.Store, ids *codec.Idents) {
	typeName := s.Type.Obj().Name()
	store, newStore := s.Ident("Store"), s.Func("New", "Store")
	keyType := jen.String()
	if s.KeyFields != nil {
		keyType = jen.Id(s.Ident("Key"))
	}

	f.Commentf("%s is a store of %s values: store id %q, default TTL %s.", store, typeName, s.ID, formatDuration(s.TTL))
	f.Type().Id(store).Op("=").Add(eph("Store")).Types(keyType.Clone(), typeRef(s.Type))

	b, opts := ids.Name("b"), ids.Name("opts")
	f.Commentf("%s returns the %s on backend %s. The directive's settings are the defaults; %s override them.", newStore, store, b, opts)
	f.Func().Id(newStore).Params(jen.Id(b).Add(eph("Backend")), jen.Id(opts).Op("...").Add(eph("StoreOption"))).
		Params(jen.Op("*").Id(store), jen.Error()).Block(
		jen.Return(eph("New").Call(jen.Id(b), config(s, keyType), jen.Id(opts).Op("..."))),
	)
}

// multiline is a composite literal with one element per line.
var multiline = jen.Options{Open: "{", Close: "}", Separator: ",", Multi: true}

// config is the ephemeral.Config literal of s, whose key type is keyType: a field for each
// option of the directive's table that is part of the Config and is given, then the codecs of
// the value and the key, and with key fields the function that returns a value's key.
func config(s *model.Store, keyType *jen.Statement) jen.Code {
	var fields, limits []jen.Code
	for _, o := range directive.Options {
		if o.Field == "" {
			continue
		}
		var v jen.Code
		switch x := o.Get(&s.Settings).(type) {
		case string:
			if x != "" {
				v = jen.Lit(x)
			}
		case int:
			if x != 0 {
				v = jen.Lit(x)
			}
		case time.Duration:
			if x != 0 {
				v = duration(x)
			}
		}
		if v == nil {
			continue
		}
		if name, ok := strings.CutPrefix(o.Field, "Limits."); ok {
			limits = append(limits, field(name, v))
		} else {
			fields = append(fields, field(o.Field, v))
		}
	}
	if limits != nil {
		fields = append(fields, field("Limits", eph("Limits").Custom(multiline, limits...)))
	}
	fields = append(fields, field("Codec", jen.Id(s.Ident("Codec")).Values()))
	if s.KeyFields == nil {
		fields = append(fields, field("Key", eph("StringKeys").Call()))
	} else {
		key := s.Ident("Key")
		fields = append(fields,
			field("Key", eph("KeyCodec").Types(jen.Id(key)).Values(
				field("Format", jen.Id(key).Dot("String")), field("Parse", jen.Id(s.Func("Parse", "Key"))))),
			field("KeyOf", typeRef(s.Type).Dot("EphemeralKey")))
	}
	return eph("Config").Types(keyType, typeRef(s.Type)).Custom(multiline, fields...)
}

// duration writes d readably: 30 * time.Second, time.Minute, 1500 * time.Millisecond.
func duration(d time.Duration) jen.Code {
	units := []struct {
		d    time.Duration
		name string
	}{{time.Hour, "Hour"}, {time.Minute, "Minute"}, {time.Second, "Second"}, {time.Millisecond, "Millisecond"}, {time.Microsecond, "Microsecond"}}
	for _, u := range units {
		if d%u.d == 0 {
			if d == u.d {
				return jen.Qual("time", u.name)
			}
			return jen.Id(strconv.FormatInt(int64(d/u.d), 10)).Op("*").Qual("time", u.name)
		}
	}
	return jen.Qual("time", "Duration").Call(jen.Id(strconv.FormatInt(int64(d), 10)))
}

// paramName turns a field name into a parameter name: Room → room, UserID → userID,
// ID → id, HTTPHost → httpHost. It appends _ to a keyword, to a predeclared name (string,
// which the body of a prefix builder may convert to) and to root, the name of the import that
// the body uses.
func paramName(field, root string) string {
	r := []rune(field)
	n := 0
	for n < len(r) && unicode.IsUpper(r[n]) {
		n++
	}
	if n > 1 && n < len(r) {
		n-- // HTTPHost: keep the H of Host
	}
	for i := 0; i < n; i++ {
		r[i] = unicode.ToLower(r[i])
	}
	name := string(r)
	if jen.IsReservedWord(name) || types.Universe.Lookup(name) != nil || name == root {
		name += "_"
	}
	return name
}

func joinAnd(s []string) string {
	if len(s) <= 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// article returns the indefinite article of word: "an" before a, e, i or o, else "a".
func article(word string) string {
	if word != "" && strings.ContainsRune("aeioAEIO", rune(word[0])) {
		return "an"
	}
	return "a"
}

// formatDuration writes d as Duration.String does, without zero minutes and seconds at its
// end: 1h rather than 1h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

func agree(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
