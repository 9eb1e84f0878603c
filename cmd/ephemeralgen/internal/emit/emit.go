// Package emit writes the Go code of ephemeralgen's output files with jennifer: key types and
// builders, typed stores, and (through codecgen) the codecs of the annotated types.
package emit

import (
	"bytes"
	"fmt"
	"go/types"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/dave/jennifer/jen"

	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/diag"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/directive"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/load"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/model"
)

// RuntimePath is the import path of the runtime that generated code calls.
const RuntimePath = "github.com/ephemeral-go/ephemeral/runtime"

// Codecs emits the JSON codecs of annotated types into output files. *codecgen.Generator is
// the implementation; tests may substitute their own.
type Codecs interface {
	// Add requests the codec <T>Codec of t in output file file and reports the problems of t.
	Add(file string, t *types.Named) []diag.Diagnostic
	// Emit writes the declarations of output file file into f.
	Emit(file string, f *jen.File)
}

// guarded are the imports generated code may use (ours, and the standard library's that
// codecgen may use; it names its own runtime/jsonc import), with their names. When the package
// scope already declares a name, the import gets an alias instead.
var guarded = map[string]string{
	RuntimePath:       "ephemeralrt",
	"context":         "context",
	"encoding/base64": "base64",
	"encoding/json":   "json",
	"errors":          "errors",
	"math":            "math",
	"strconv":         "strconv",
	"time":            "time",
	"unicode/utf8":    "utf8",
}

// File renders the output file named file (a base name, such as presence_ephemeral.go) of the
// stores declared in one source file of pkg; goBuild is that file's //go:build line, if any,
// which the output repeats. The output is gofmt-formatted and depends only on its inputs.
func File(pkg *types.Package, file, goBuild string, stores []*model.Store, codecs Codecs) ([]byte, error) {
	f := jen.NewFilePathName(pkg.Path(), pkg.Name())
	f.HeaderComment(strings.TrimPrefix(load.Header, "// "))
	if goBuild != "" {
		f.HeaderComment(goBuild)
	}
	importNames(f, pkg.Scope())
	for _, s := range stores {
		if s.KeyFields != nil {
			keyDecls(f, s)
		}
		storeDecls(f, s)
	}
	codecs.Emit(file, f)
	var buf bytes.Buffer
	if err := f.Render(&buf); err != nil {
		return nil, fmt.Errorf("rendering %s: %w", file, err)
	}
	return buf.Bytes(), nil
}

// importNames fixes the name of every guarded import: its usual name, or when the package
// scope declares that, the first of name2, name3, ... that it does not.
func importNames(f *jen.File, scope *types.Scope) {
	for path, base := range guarded {
		name := base
		for i := 2; scope.Lookup(name) != nil; i++ {
			name = base + strconv.Itoa(i)
		}
		if path == RuntimePath || name != base {
			f.ImportAlias(path, name)
		} else {
			f.ImportName(path, name)
		}
	}
}

func rt(name string) *jen.Statement { return jen.Qual(RuntimePath, name) }

// keyDecls emits <Name>Key with String, Parse<Name>Key, the prefix builders and EphemeralKey.
func keyDecls(f *jen.File, s *model.Store) {
	typeName := s.Type.Obj().Name()
	key := s.Ident("Key")
	fieldNames := make([]string, len(s.KeyFields))
	for i, kf := range s.KeyFields {
		fieldNames[i] = kf.Name
	}

	f.Commentf("%s is the key of a %s in store %q: its fields %s, in this order.", key, typeName, s.ID, joinAnd(fieldNames))
	f.Type().Id(key).StructFunc(func(g *jen.Group) {
		for _, kf := range s.KeyFields {
			g.Id(kf.Name).Add(typeRef(kf.Type))
		}
	})

	f.Comment("String returns the key's string form: the fields, each escaped, joined with \":\".")
	f.Func().Params(jen.Id("k").Id(key)).Id("String").Params().String().Block(
		jen.Return(rt("JoinKey").CallFunc(func(g *jen.Group) {
			for _, kf := range s.KeyFields {
				g.Add(formatPart(kf, jen.Id("k").Dot(kf.Name)))
			}
		})),
	)

	parse := s.Func("Parse", "Key")
	f.Commentf("%s parses the string form of a %s. It accepts exactly the strings %s.String returns.", parse, key, key)
	f.Func().Id(parse).Params(jen.Id("s").String()).Params(jen.Id(key), jen.Error()).BlockFunc(func(g *jen.Group) {
		g.List(jen.Id("p"), jen.Err()).Op(":=").Add(rt("SplitKey")).Call(jen.Id("s"), jen.Lit(len(s.KeyFields)))
		g.If(jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Id(key).Values(), jen.Err()))
		var values []jen.Code
		for i, kf := range s.KeyFields {
			part := jen.Id("p").Index(jen.Lit(i))
			if kf.Kind == model.KeyString {
				values = append(values, field(kf.Name, convert(kf.Type, types.Typ[types.String], part)))
				continue
			}
			n := "n" + strconv.Itoa(i)
			fn, wide := "ParseKeyInt", types.Typ[types.Int64]
			if kf.Kind == model.KeyUint {
				fn, wide = "ParseKeyUint", types.Typ[types.Uint64]
			}
			g.List(jen.Id(n), jen.Err()).Op(":=").Add(rt(fn)).Call(part, jen.Lit(kf.Bits))
			g.If(jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Id(key).Values(), jen.Err()))
			values = append(values, field(kf.Name, convert(kf.Type, wide, jen.Id(n))))
		}
		g.Return(jen.Id(key).Values(values...), jen.Nil())
	})

	for k := 1; k < len(s.KeyFields); k++ {
		lead := s.KeyFields[:k]
		params := make([]string, k)
		for i, kf := range lead {
			params[i] = paramName(kf.Name)
		}
		name := s.KeyPrefixFunc(k)
		f.Commentf("%s returns the key prefix of the %s entries whose %s %s; pass it to WithPrefix.", name, typeName, joinAnd(fieldNames[:k]), agree(k, "is", "are")+" "+joinAnd(params))
		f.Func().Id(name).ParamsFunc(func(g *jen.Group) {
			for i, kf := range lead {
				g.Id(params[i]).Add(typeRef(kf.Type))
			}
		}).String().Block(
			jen.Return(rt("JoinKeyPrefix").CallFunc(func(g *jen.Group) {
				for i, kf := range lead {
					g.Add(formatPart(kf, jen.Id(params[i])))
				}
			})),
		)
	}

	f.Commentf("EphemeralKey returns the key of v in store %q.", s.ID)
	f.Func().Params(jen.Id("v").Id(typeName)).Id("EphemeralKey").Params().Id(key).Block(
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
		return rt("FormatKeyInt").Call(convert(types.Typ[types.Int64], kf.Type, v))
	case model.KeyUint:
		return rt("FormatKeyUint").Call(convert(types.Typ[types.Uint64], kf.Type, v))
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

// storeDecls emits the typed store of s with its entry, snapshot, event, reader, mirror and
// change types.
func storeDecls(f *jen.File, s *model.Store) {
	typeName := s.Type.Obj().Name()
	val := jen.Id(typeName)
	store, entry, snapshot, event, reader := s.Ident("Store"), s.Ident("Entry"), s.Ident("Snapshot"), s.Ident("Event"), s.Ident("Reader")
	mirror, change, onChange := s.Ident("Mirror"), s.Ident("Change"), s.Func("On", "Change")
	keyType := jen.String()
	keyStr := func() *jen.Statement { return jen.Id("key") }
	format, parse := rt("FormatPlainKey"), rt("ParsePlainKey")
	if s.KeyFields != nil {
		keyType = jen.Id(s.Ident("Key"))
		keyStr = func() *jen.Statement { return jen.Id("key").Dot("String").Call() }
		format, parse = jen.Id(s.Ident("Key")).Dot("String"), jen.Id(s.Func("Parse", "Key"))
	}
	generic := func(name string) *jen.Statement { return rt(name).Types(keyType, val) }

	f.Commentf("%s is an entry of a %s, with its typed key.", entry, store)
	f.Type().Id(entry).Op("=").Add(generic("KeyedEntry"))
	f.Commentf("%s is the result of %s.Snapshot.", snapshot, store)
	f.Type().Id(snapshot).Op("=").Add(generic("KeyedSnapshot"))
	f.Commentf("%s is an event of a %s, with its typed key.", event, reader)
	f.Type().Id(event).Op("=").Add(generic("KeyedEvent"))
	f.Commentf("%s is a stream of a %s's events, from %s.Reader.", reader, store, store)
	f.Type().Id(reader).Op("=").Add(generic("KeyedReader"))
	f.Commentf("%s is an in-process replica of a tenant of a %s, from %s.Mirror.", mirror, store, store)
	f.Type().Id(mirror).Op("=").Add(generic("KeyedMirror"))
	f.Commentf("%s is a change of a %s's state, with its typed key; see %s.", change, mirror, onChange)
	f.Type().Id(change).Op("=").Add(generic("KeyedChange"))

	f.Commentf("%s is a typed store of %s values: store id %q, default TTL %s.", store, typeName, s.ID, s.TTL)
	f.Type().Id(store).Struct(jen.Id("store").Op("*").Add(rt("Store")).Types(val))

	newStore := s.Func("New", "Store")
	f.Commentf("%s returns the %s on backend. The directive's settings are the defaults; opts override them.", newStore, store)
	f.Func().Id(newStore).Params(jen.Id("backend").Add(rt("Backend")), jen.Id("opts").Op("...").Add(rt("StoreOption"))).
		Params(jen.Op("*").Id(store), jen.Error()).Block(
		jen.List(jen.Id("s"), jen.Err()).Op(":=").Add(rt("New")).Types(val).Call(jen.Id("backend"), jen.Id(typeName+"Codec").Values(), config(s), jen.Id("opts").Op("...")),
		jen.If(jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Nil(), jen.Err())),
		jen.Return(jen.Op("&").Id(store).Values(jen.Dict{jen.Id("store"): jen.Id("s")}), jen.Nil()),
	)

	recv := func() *jen.Statement { return f.Func().Params(jen.Id("s").Op("*").Id(store)) }
	ctx := jen.Id("ctx").Qual("context", "Context")
	inner := func() *jen.Statement { return jen.Id("s").Dot("store") }
	opts := func(kind string) *jen.Statement { return jen.Id("opts").Op("...").Add(rt(kind)) }

	f.Commentf("Store returns the untyped store under s, which addresses entries by the string form of their keys.")
	recv().Id("Store").Params().Op("*").Add(rt("Store")).Types(val).Block(jen.Return(inner()))

	if s.KeyFields != nil {
		f.Comment("Put creates or replaces the entry of v at its key, v.EphemeralKey(); see Upsert.")
		recv().Id("Put").Params(ctx, jen.Id("v").Add(val), opts("UpsertOption")).Params(jen.Id(entry), jen.Error()).Block(
			jen.Return(jen.Id("s").Dot("Upsert").Call(jen.Id("ctx"), jen.Id("v").Dot("EphemeralKey").Call(), jen.Id("v"), jen.Id("opts").Op("..."))),
		)
	}

	f.Comment("Upsert creates or replaces the entry at key with v and resets its TTL.")
	recv().Id("Upsert").Params(ctx, jen.Id("key").Add(keyType), jen.Id("v").Add(val), opts("UpsertOption")).Params(jen.Id(entry), jen.Error()).Block(
		jen.List(jen.Id("e"), jen.Err()).Op(":=").Add(inner()).Dot("Upsert").Call(jen.Id("ctx"), keyStr(), jen.Id("v"), jen.Id("opts").Op("...")),
		jen.If(jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Id(entry).Values(), jen.Err())),
		jen.Return(rt("KeyEntry").Call(jen.Id("key"), jen.Id("e")), jen.Nil()),
	)

	f.Comment("Touch extends the TTL of the live entry at key; the result's OK is false when there is none.")
	recv().Id("Touch").Params(ctx, jen.Id("key").Add(keyType), opts("TouchOption")).Params(rt("TouchResult"), jen.Error()).Block(
		jen.Return(inner().Dot("Touch").Call(jen.Id("ctx"), keyStr(), jen.Id("opts").Op("..."))),
	)

	f.Comment("Remove deletes the entry at key and reports whether it was live.")
	recv().Id("Remove").Params(ctx, jen.Id("key").Add(keyType), opts("RemoveOption")).Params(jen.Bool(), jen.Error()).Block(
		jen.Return(inner().Dot("Remove").Call(jen.Id("ctx"), keyStr(), jen.Id("opts").Op("..."))),
	)

	f.Comment("Get returns the live entry at key; ok is false when there is none.")
	recv().Id("Get").Params(ctx, jen.Id("key").Add(keyType), opts("GetOption")).Params(jen.Id(entry), jen.Bool(), jen.Error()).Block(
		jen.List(jen.Id("e"), jen.Id("ok"), jen.Err()).Op(":=").Add(inner()).Dot("Get").Call(jen.Id("ctx"), keyStr(), jen.Id("opts").Op("...")),
		jen.If(jen.Op("!").Id("ok")).Block(jen.Return(jen.Id(entry).Values(), jen.False(), jen.Err())),
		jen.Return(rt("KeyEntry").Call(jen.Id("key"), jen.Id("e")), jen.True(), jen.Nil()),
	)

	f.Comment("Snapshot returns every live entry, sorted by key, and the cursor to start a Reader after.")
	recv().Id("Snapshot").Params(ctx, opts("SnapshotOption")).Params(jen.Id(snapshot), jen.Error()).Block(
		jen.List(jen.Id("snap"), jen.Err()).Op(":=").Add(inner()).Dot("Snapshot").Call(jen.Id("ctx"), jen.Id("opts").Op("...")),
		jen.If(jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Id(snapshot).Values(), jen.Err())),
		jen.Return(rt("KeySnapshot").Call(jen.Id("snap"), parse.Clone())),
	)

	f.Comment("Reader starts a stream of the tenant's events. Close it when done.")
	recv().Id("Reader").Params(ctx, opts("ReaderOption")).Params(jen.Op("*").Id(reader), jen.Error()).Block(
		jen.List(jen.Id("r"), jen.Err()).Op(":=").Add(inner()).Dot("Reader").Call(jen.Id("ctx"), jen.Id("opts").Op("...")),
		jen.If(jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Nil(), jen.Err())),
		jen.Return(rt("NewKeyedReader").Call(jen.Id("r"), parse.Clone()), jen.Nil()),
	)

	f.Commentf("Mirror starts an in-process replica of the default tenant (another with WithTenant), or of its keys with a prefix (WithPrefix); see runtime.Store.Mirror. Report its changes with %s.", onChange)
	recv().Id("Mirror").Params(opts("MirrorOption")).Params(jen.Op("*").Id(mirror), jen.Error()).Block(
		jen.List(jen.Id("m"), jen.Err()).Op(":=").Add(inner()).Dot("Mirror").Call(jen.Id("opts").Op("...")),
		jen.If(jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Nil(), jen.Err())),
		jen.Return(rt("NewKeyedMirror").Call(jen.Id("m"), format, parse.Clone()), jen.Nil()),
	)

	if s.KeyFields != nil {
		f.Commentf("%s makes a %s call fn with every change, in order. A change whose key does not parse (written by a foreign client) goes to the mirror's OnMirrorError callback instead.", onChange, mirror)
	} else {
		f.Commentf("%s makes a %s call fn with every change, in order; see runtime.OnChange.", onChange, mirror)
	}
	f.Func().Id(onChange).Params(jen.Id("fn").Func().Params(jen.Id(change))).Add(rt("MirrorOption")).Block(
		jen.Return(rt("OnKeyedChange").Call(jen.Id("fn"), parse.Clone())),
	)
}

// config is the runtime.Config literal of the directive's settings: a field for each option
// of the directive's table that is part of the Config and is given.
func config(s *model.Store) jen.Code {
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
		fields = append(fields, field("Limits", rt("Limits").Values(limits...)))
	}
	return rt("Config").Values(fields...)
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
// ID → id, HTTPHost → httpHost.
func paramName(field string) string {
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
	if jen.IsReservedWord(name) || name == "ephemeralrt" {
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

func agree(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
