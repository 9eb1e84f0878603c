// Package model checks //ephemeral:store directives against the types they annotate, producing
// the validated stores the emitter writes code for.
package model

import (
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"path/filepath"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/codec"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/diag"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/directive"
)

// Store is one validated //ephemeral:store directive.
type Store struct {
	directive.Settings
	Pos       token.Pos    // the directive
	File      string       // the file that declares the type
	Type      *types.Named // the annotated struct type
	KeyFields []KeyField   // the key fields, in key order; nil when keys are plain strings
}

// KeyKind is the kind of a key field's underlying type.
type KeyKind uint8

// Key field kinds.
const (
	KeyString KeyKind = iota + 1
	KeyInt
	KeyUint
)

// KeyField is one field of a store's key.
type KeyField struct {
	Name string
	Type types.Type
	Kind KeyKind
	Bits int // the integer size in bits; 0 for int and uint
}

// Ident returns the generated identifier Name+suffix, such as PresenceStore.
func (s *Store) Ident(suffix string) string { return s.Name + suffix }

// Func returns the generated identifier verb+Name+suffix, such as NewPresenceStore; it is
// unexported (newPresenceStore) when Name is.
func (s *Store) Func(verb, suffix string) string {
	if token.IsExported(s.Name) {
		return verb + s.Name + suffix
	}
	r, n := utf8.DecodeRuneInString(s.Name)
	return strings.ToLower(verb) + string(unicode.ToUpper(r)) + s.Name[n:] + suffix
}

// KeyPrefixFunc returns the name of the prefix builder for the first k key fields:
// <Name>KeyPrefix for one field, <Name>KeyPrefix<k> for more.
func (s *Store) KeyPrefixFunc(k int) string {
	if k == 1 {
		return s.Ident("KeyPrefix")
	}
	return s.Ident(fmt.Sprintf("KeyPrefix%d", k))
}

// Names returns the package-level identifiers generated for s.
func (s *Store) Names() []string {
	names := []string{s.Ident("Store"), s.Func("New", "Store"), s.Ident("Codec")}
	if s.Key != nil {
		names = append(names, s.Ident("Key"), s.Func("Parse", "Key"))
		for k := 1; k < len(s.Key); k++ {
			names = append(names, s.KeyPrefixFunc(k))
		}
	}
	return names
}

// Methods are the methods generated on annotated types of stores with key fields.
var Methods = []string{"EphemeralKey"}

// Parse finds the directives in files, the syntax of one package (of which info holds the
// types and scope the package scope), and returns the stores they declare, in source order,
// the stores of the directives with problems whose types are structs all the same (so that
// the problems of their fields can be reported with the directive's), and every problem found.
func Parse(fset *token.FileSet, files []*ast.File, info *types.Info, scope *types.Scope) (stores, rejected []*Store, diags []diag.Diagnostic) {
	var dirs []*directive.Directive
	for _, f := range files {
		d, ds := directive.Find(fset, f)
		dirs = append(dirs, d...)
		diags = append(diags, ds...)
	}
	for _, d := range dirs {
		s, ds := check(fset, d, info)
		diags = append(diags, ds...)
		switch {
		case s != nil && !d.Invalid && !diag.HasErrors(ds):
			stores = append(stores, s)
		case s != nil && s.Type != nil:
			rejected = append(rejected, s)
		}
	}
	diags = append(diags, checkUnique(fset, stores, scope)...)
	return stores, rejected, diags
}

// Candidates returns the identifiers the directives in files would generate, valid or not, so
// that references to them in hand-written code can be told apart from real type errors.
func Candidates(fset *token.FileSet, files []*ast.File) []string {
	var names []string
	for _, f := range files {
		dirs, _ := directive.Find(fset, f)
		for _, d := range dirs {
			names = append(names, (&Store{Settings: d.Settings}).Names()...)
		}
	}
	return append(names, Methods...)
}

// check validates a directive against its type.
func check(fset *token.FileSet, d *directive.Directive, info *types.Info) (*Store, []diag.Diagnostic) {
	var diags []diag.Diagnostic
	bad := func(pos token.Pos, format string, args ...any) {
		diags = append(diags, diag.Errorf(fset.Position(pos), format, args...))
	}
	s := &Store{Settings: d.Settings, Pos: d.Pos, File: d.File}
	st, named := structType(d.Type, info, bad)
	if st == nil {
		return nil, diags
	}
	s.Type = named
	if d.Key != nil {
		s.KeyFields = keyFields(d.Key, d.Given["key"], named, st, bad)
	}
	checkLocks(named, st, d.Pos, bad)
	return s, diags
}

// structType returns the annotated type and its struct, or reports why it cannot be a store.
func structType(ts *ast.TypeSpec, info *types.Info, bad func(token.Pos, string, ...any)) (*types.Struct, *types.Named) {
	switch {
	case ts.Assign.IsValid():
		bad(ts.Name.Pos(), "%s is an alias; put %s on the type it stands for, or make %s a type of its own: type %s %s", ts.Name.Name, directive.Verb, ts.Name.Name, ts.Name.Name, types.ExprString(ts.Type))
		return nil, nil
	case ts.TypeParams != nil:
		bad(ts.Name.Pos(), "%s is generic; declare a non-generic type, such as type Int%s %s[int], and annotate it", ts.Name.Name, ts.Name.Name, ts.Name.Name)
		return nil, nil
	}
	obj, _ := info.Defs[ts.Name].(*types.TypeName)
	if obj == nil {
		bad(ts.Name.Pos(), "%s has no type information", ts.Name.Name)
		return nil, nil
	}
	named, _ := obj.Type().(*types.Named)
	st, _ := obj.Type().Underlying().(*types.Struct)
	if named == nil || st == nil {
		bad(ts.Name.Pos(), "%s is not a struct type (its underlying type is %s); %s needs a struct", ts.Name.Name, obj.Type().Underlying(), directive.Verb)
		return nil, nil
	}
	return st, named
}

// keyFields resolves the key field names against the struct's direct fields; pos is that of
// the key= option. It reports every bad key field, and returns nil if there is one.
func keyFields(key []string, pos token.Pos, named *types.Named, st *types.Struct, bad func(token.Pos, string, ...any)) []KeyField {
	typeName := named.Obj().Name()
	fields := map[string]int{}
	var names []string
	for i := range st.NumFields() {
		fields[st.Field(i).Name()] = i
		names = append(names, st.Field(i).Name())
	}
	var kfs []KeyField
	failed := false
	report := func(format string, args ...any) {
		bad(pos, format, args...)
		failed = true
	}
	for _, name := range key {
		i, ok := fields[name]
		if !ok {
			obj, index, _ := types.LookupFieldOrMethod(named, false, named.Obj().Pkg(), name)
			if v, isVar := obj.(*types.Var); isVar && v.IsField() && len(index) > 1 {
				report("key field %s is promoted from the embedded field %s; key fields must be direct fields of %s", name, st.Field(index[0]).Name(), typeName)
			} else {
				report("key field %s: %s has no field %s; %s", name, typeName, name, suggestField(name, names))
			}
			continue
		}
		f := st.Field(i)
		jsonName, written := codec.Writes(named, i)
		const lost = "so the codec does not write it and a value's key would not survive its round trip through the store"
		switch {
		case !f.Exported():
			report("key field %s is unexported, %s; export it", name, lost)
		case reflect.StructTag(st.Tag(i)).Get("json") == "-":
			report("key field %s is tagged json:\"-\", %s; remove the tag", name, lost)
		case !written:
			report("key field %s has the JSON name %q of another field of %s too, and encoding/json writes neither or the other one, %s; give it a JSON name of its own", name, jsonName, typeName, lost)
		case name == "String":
			report("key field String would clash with the String method of the key type generated for %s; rename the field", typeName)
		default:
			if kf, ok := keyField(f); ok {
				kfs = append(kfs, kf)
			} else {
				report("key field %s has type %s; key fields must be strings or integers (or named types of them)", name, types.TypeString(f.Type(), types.RelativeTo(f.Pkg())))
			}
		}
	}
	if failed {
		return nil
	}
	return kfs
}

func suggestField(name string, fields []string) string {
	if best := directive.Closest(name, fields); best != "" {
		return "did you mean " + best + "?"
	}
	return "its fields are " + strings.Join(fields, ", ")
}

func keyField(f *types.Var) (KeyField, bool) {
	b, ok := f.Type().Underlying().(*types.Basic)
	if !ok {
		return KeyField{}, false
	}
	kf := KeyField{Name: f.Name(), Type: f.Type()}
	switch b.Kind() {
	case types.String:
		kf.Kind = KeyString
	case types.Int, types.Int8, types.Int16, types.Int32, types.Int64:
		kf.Kind, kf.Bits = KeyInt, intBits[b.Kind()]
	case types.Uint, types.Uint8, types.Uint16, types.Uint32, types.Uint64:
		kf.Kind, kf.Bits = KeyUint, intBits[b.Kind()]
	default:
		return KeyField{}, false
	}
	return kf, true
}

var intBits = map[types.BasicKind]int{
	types.Int8: 8, types.Int16: 16, types.Int32: 32, types.Int64: 64,
	types.Uint8: 8, types.Uint16: 16, types.Uint32: 32, types.Uint64: 64,
}

// locker is the method set of sync.Locker.
var locker = func() *types.Interface {
	sig := types.NewSignatureType(nil, nil, nil, nil, nil, false)
	return types.NewInterfaceType([]*types.Func{
		types.NewFunc(token.NoPos, nil, "Lock", sig), types.NewFunc(token.NoPos, nil, "Unlock", sig),
	}, nil).Complete()
}()

// checkLocks reports a store type that holds a lock, as go vet's copylocks check finds them: a
// value, not behind a pointer, of a type whose pointer has Lock and Unlock methods but which
// has not (sync.Mutex, sync.WaitGroup, sync.Once, atomic.Int64, ...), or of a struct or array
// that holds one. The store copies values, and so does the generated code (Put takes a value,
// KeyOf is the value method EphemeralKey), which vet rejects; json:"-" does not change that.
func checkLocks(named *types.Named, st *types.Struct, pos token.Pos, bad func(token.Pos, string, ...any)) {
	const why = "the store copies %s values (Put takes one; Get, readers and mirrors return them), " +
		"which would copy the lock and which go vet rejects, also with json:\"-\"; keep the lock out of the stored type, or hold it by pointer"
	typeName := named.Obj().Name()
	qual := func(p *types.Package) string {
		if p == named.Obj().Pkg() {
			return ""
		}
		return p.Name()
	}
	if isLock(named) {
		bad(pos, "%s is a lock (*%s has Lock and Unlock methods): "+why, typeName, typeName, typeName)
		return
	}
	for i := range st.NumFields() {
		f := st.Field(i)
		path := lockPath(f.Type(), qual, map[types.Type]bool{})
		if path == nil {
			continue
		}
		at := f.Pos()
		if !at.IsValid() {
			at = pos
		}
		bad(at, "field %s.%s holds a lock (%s): "+why, typeName, f.Name(), strings.Join(path, " contains "), typeName)
	}
}

// lockPath returns the types from t to the lock that a value of type t holds, or nil.
func lockPath(t types.Type, qual types.Qualifier, seen map[types.Type]bool) []string {
	for {
		a, ok := t.Underlying().(*types.Array)
		if !ok {
			break
		}
		t = a.Elem()
	}
	st, ok := t.Underlying().(*types.Struct)
	if !ok || seen[t] {
		return nil
	}
	seen[t] = true
	if isLock(t) {
		return []string{types.TypeString(t, qual)}
	}
	for i := range st.NumFields() {
		if path := lockPath(st.Field(i).Type(), qual, seen); path != nil {
			return append([]string{types.TypeString(t, qual)}, path...)
		}
	}
	return nil
}

// isLock reports whether the pointer of t has Lock and Unlock methods and t has not.
func isLock(t types.Type) bool {
	return types.Implements(types.NewPointer(t), locker) && !types.Implements(t, locker)
}

// checkUnique reports stores that share an id or a generated name, and generated names that
// are already declared in the package.
func checkUnique(fset *token.FileSet, stores []*Store, scope *types.Scope) []diag.Diagnostic {
	var diags []diag.Diagnostic
	bad := func(pos token.Pos, format string, args ...any) {
		diags = append(diags, diag.Errorf(fset.Position(pos), format, args...))
	}
	ids := map[string]*Store{}
	names := map[string]*Store{}
	for _, s := range stores {
		if o := ids[s.ID]; o != nil {
			bad(s.Pos, "store id %q is already used by %s (%s); give each store its own id", s.ID, o.Type.Obj().Name(), shortPos(fset, o.Pos))
		} else {
			ids[s.ID] = s
		}
		for _, n := range s.Names() {
			if o := names[n]; o != nil {
				bad(s.Pos, "%s is also generated for %s (%s); set name= to tell the stores apart", n, o.Type.Obj().Name(), shortPos(fset, o.Pos))
				break
			}
			names[n] = s
			if obj := scope.Lookup(n); obj != nil {
				bad(s.Pos, "%s would be generated but is already declared (%s); rename it or set name=", n, shortPos(fset, obj.Pos()))
			}
		}
		if s.KeyFields != nil {
			if obj, _, _ := types.LookupFieldOrMethod(s.Type, true, s.Type.Obj().Pkg(), "EphemeralKey"); obj != nil {
				bad(s.Pos, "%s already has a field or method EphemeralKey (%s); rename it", s.Type.Obj().Name(), shortPos(fset, obj.Pos()))
			}
		}
	}
	return diags
}

// shortPos formats pos as file:line with the file's base name: the file is in the same package.
func shortPos(fset *token.FileSet, pos token.Pos) string {
	p := fset.Position(pos)
	return fmt.Sprintf("%s:%d", filepath.Base(p.Filename), p.Line)
}
