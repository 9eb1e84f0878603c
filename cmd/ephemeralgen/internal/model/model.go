// Package model reads //ephemeral:store directives and checks them against the types they
// annotate, producing the validated stores the emitter writes code for.
package model

import (
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Verb is the directive that declares a store.
const Verb = "//ephemeral:store"

// Limits on store ids and tenants, those of the runtime.
const (
	maxIDBytes     = 256
	maxTenantBytes = 256
)

// Store is one validated //ephemeral:store directive.
type Store struct {
	Pos    token.Pos    // the directive
	File   string       // the file that declares the type
	Type   *types.Named // the annotated struct type
	Name   string       // the prefix of the generated identifiers
	ID     string
	TTL    time.Duration
	Tenant string // "" means the runtime's default tenant
	Limits Limits
	Key    []KeyField // the key fields, in key order; nil when keys are plain strings
}

// Limits are the limits a directive sets; zero means the runtime's default.
type Limits struct {
	MaxEntries int
	MaxPayload int
	Retention  time.Duration
	MaxEvents  int
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

// Diagnostic is a problem in a directive or in the type it annotates.
type Diagnostic struct {
	Pos token.Pos
	Msg string
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

// Names returns the package-level identifiers generated for s (besides the codec, which is
// named after the type).
func (s *Store) Names() []string {
	names := []string{s.Ident("Store"), s.Func("New", "Store"), s.Ident("Entry"), s.Ident("Snapshot"), s.Ident("Event"), s.Ident("Reader"),
		s.Ident("Mirror"), s.Ident("Change"), s.Func("On", "Change")}
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

// A candidate is a directive found on a type, before it is checked against the type.
type candidate struct {
	pos   token.Pos
	file  string
	spec  *ast.TypeSpec
	opts  map[string]option
	name  string
	diags []Diagnostic
}

type option struct {
	key, val string
	pos      token.Pos // of the key
}

// Parse finds the directives in files, the syntax of one package (of which info holds the
// types and scope the package scope), and returns the stores they declare, in source order,
// and every problem found.
func Parse(fset *token.FileSet, files []*ast.File, info *types.Info, scope *types.Scope) ([]*Store, []Diagnostic) {
	var (
		cands []*candidate
		diags []Diagnostic
	)
	for _, f := range files {
		c, d := findDirectives(fset, f)
		cands = append(cands, c...)
		diags = append(diags, d...)
	}
	var stores []*Store
	for _, c := range cands {
		s, d := check(c, info)
		diags = append(diags, d...)
		if s != nil {
			stores = append(stores, s)
		}
	}
	diags = append(diags, checkUnique(fset, stores, scope)...)
	return stores, diags
}

// Candidates returns the identifiers the directives in files would generate, valid or not, so
// that references to them in hand-written code can be told apart from real type errors.
func Candidates(fset *token.FileSet, files []*ast.File) []string {
	var names []string
	for _, f := range files {
		cands, _ := findDirectives(fset, f)
		for _, c := range cands {
			s := &Store{Name: c.name}
			if k, ok := c.opts["key"]; ok {
				s.Key = make([]KeyField, len(strings.Split(k.val, ",")))
			}
			names = append(names, s.Names()...)
			names = append(names, c.spec.Name.Name+"Codec")
		}
	}
	return append(names, Methods...)
}

// findDirectives returns the directives of one file, with the problems of their syntax.
func findDirectives(fset *token.FileSet, f *ast.File) ([]*candidate, []Diagnostic) {
	docs := typeDocs(f)
	var (
		cands []*candidate
		diags []Diagnostic
		seen  = map[*ast.TypeSpec]bool{}
	)
	for _, g := range f.Comments {
		for _, c := range g.List {
			rest, ok := strings.CutPrefix(c.Text, "//ephemeral:")
			if !ok {
				continue
			}
			verb, args := rest, ""
			if i := strings.IndexAny(rest, " \t"); i >= 0 {
				verb, args = rest[:i], rest[i:]
			}
			if verb != "store" {
				diags = append(diags, Diagnostic{c.Pos(), fmt.Sprintf("unknown directive //ephemeral:%s; write %s", verb, Verb)})
				continue
			}
			spec := docs[g]
			if spec == nil {
				diags = append(diags, Diagnostic{c.Pos(), Verb + " must be in the doc comment of a package-level type declaration, right above type T struct"})
				continue
			}
			if seen[spec] {
				diags = append(diags, Diagnostic{c.Pos(), fmt.Sprintf("%s has more than one %s directive; keep one", spec.Name.Name, Verb)})
				continue
			}
			seen[spec] = true
			cand := &candidate{pos: c.Pos(), file: fset.File(c.Pos()).Name(), spec: spec, name: spec.Name.Name}
			argsPos := c.Pos() + token.Pos(len(c.Text)-len(args))
			cand.opts, cand.diags = parseOptions(args, argsPos)
			if n, ok := cand.opts["name"]; ok {
				cand.name = n.val
			}
			cands = append(cands, cand)
		}
	}
	return cands, diags
}

// typeDocs maps the doc comments of f's type specs to their specs: the GenDecl's doc when it
// declares a single type, and each TypeSpec's own doc.
func typeDocs(f *ast.File) map[*ast.CommentGroup]*ast.TypeSpec {
	docs := map[*ast.CommentGroup]*ast.TypeSpec{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, s := range gd.Specs {
			ts := s.(*ast.TypeSpec)
			if ts.Doc != nil {
				docs[ts.Doc] = ts
			}
		}
		if gd.Doc != nil && len(gd.Specs) == 1 {
			docs[gd.Doc] = gd.Specs[0].(*ast.TypeSpec)
		}
	}
	return docs
}

// knownOptions are the directive's options, in the order the documentation gives them.
var knownOptions = []string{"id", "ttl", "key", "tenant", "maxEntries", "maxPayload", "retention", "maxEvents", "name"}

// parseOptions splits the text after the verb into name=value options. pos is the position of
// args in the file.
func parseOptions(args string, pos token.Pos) (map[string]option, []Diagnostic) {
	opts := map[string]option{}
	var diags []Diagnostic
	for off := 0; off < len(args); {
		start := off + strings.IndexFunc(args[off:], func(r rune) bool { return r != ' ' && r != '\t' })
		if start < off {
			break
		}
		end := start + strings.IndexAny(args[start:], " \t")
		if end < start {
			end = len(args)
		}
		off = end
		field, at := args[start:end], pos+token.Pos(start)
		key, val, ok := strings.Cut(field, "=")
		switch {
		case !ok:
			diags = append(diags, Diagnostic{at, fmt.Sprintf("option %q is not of the form name=value, as in ttl=30s", field)})
		case !isKnown(key):
			diags = append(diags, Diagnostic{at, unknownOption(key)})
		case opts[key].pos.IsValid():
			diags = append(diags, Diagnostic{at, fmt.Sprintf("option %s is given twice; keep one", key)})
		default:
			opts[key] = option{key: key, val: val, pos: at}
		}
	}
	return opts, diags
}

func isKnown(key string) bool {
	for _, k := range knownOptions {
		if k == key {
			return true
		}
	}
	return false
}

func unknownOption(key string) string {
	best, bestDist := "", 3
	for _, k := range knownOptions {
		if d := distance(strings.ToLower(key), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown option %s; did you mean %s?", key, best)
	}
	return fmt.Sprintf("unknown option %s; the options are %s", key, strings.Join(knownOptions, ", "))
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// check validates a candidate's options and type.
func check(c *candidate, info *types.Info) (*Store, []Diagnostic) {
	diags := c.diags
	bad := func(pos token.Pos, format string, args ...any) {
		diags = append(diags, Diagnostic{pos, fmt.Sprintf(format, args...)})
	}
	s := &Store{Pos: c.pos, File: c.file, Name: c.name}
	typeName := c.spec.Name.Name

	if o, ok := c.opts["id"]; !ok {
		bad(c.pos, "%s needs id=<store id>, such as id=%s", Verb, strings.ToLower(typeName))
	} else if o.val == "" || len(o.val) > maxIDBytes {
		bad(o.pos, "id must have 1 to %d bytes, not %d", maxIDBytes, len(o.val))
	} else {
		s.ID = o.val
	}
	if o, ok := c.opts["ttl"]; !ok {
		bad(c.pos, "%s needs ttl=<duration>, such as ttl=30s", Verb)
	} else {
		s.TTL = parseDuration(o, bad)
	}
	if o, ok := c.opts["retention"]; ok {
		s.Limits.Retention = parseDuration(o, bad)
	}
	if o, ok := c.opts["tenant"]; ok {
		if o.val == "" || len(o.val) > maxTenantBytes {
			bad(o.pos, "tenant must have 1 to %d bytes, not %d", maxTenantBytes, len(o.val))
		}
		s.Tenant = o.val
	}
	s.Limits.MaxEntries = parseCount(c.opts, "maxEntries", bad)
	s.Limits.MaxPayload = parseCount(c.opts, "maxPayload", bad)
	s.Limits.MaxEvents = parseCount(c.opts, "maxEvents", bad)
	if o, ok := c.opts["name"]; ok && !token.IsIdentifier(o.val) {
		bad(o.pos, "name=%s is not a Go identifier; write one such as name=%s", o.val, typeName)
	}

	st, named := structType(c, info, bad)
	if st != nil {
		s.Type = named
		if o, ok := c.opts["key"]; ok {
			s.Key = keyFields(o, typeName, st, bad)
		}
	}
	if len(diags) > 0 {
		return nil, diags
	}
	return s, nil
}

func parseDuration(o option, bad func(token.Pos, string, ...any)) time.Duration {
	d, err := time.ParseDuration(o.val)
	switch {
	case err != nil:
		bad(o.pos, "%s=%s is not a duration; write a Go duration such as %s=30s, 5m or 1h30m", o.key, o.val, o.key)
	case d <= 0:
		bad(o.pos, "%s=%s must be positive, such as %s=30s", o.key, o.val, o.key)
	}
	return d
}

func parseCount(opts map[string]option, key string, bad func(token.Pos, string, ...any)) int {
	o, ok := opts[key]
	if !ok {
		return 0
	}
	var n int
	if _, err := fmt.Sscanf(o.val, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != o.val {
		bad(o.pos, "%s=%s is not a positive integer; write one such as %s=1000", key, o.val, key)
		return 0
	}
	return n
}

// structType returns the annotated type and its struct, or reports why it cannot be a store.
func structType(c *candidate, info *types.Info, bad func(token.Pos, string, ...any)) (*types.Struct, *types.Named) {
	ts := c.spec
	switch {
	case ts.Assign.IsValid():
		bad(ts.Name.Pos(), "%s is an alias; put %s on the type it stands for", ts.Name.Name, Verb)
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
		bad(ts.Name.Pos(), "%s is not a struct type (its underlying type is %s); %s needs a struct", ts.Name.Name, obj.Type().Underlying(), Verb)
		return nil, nil
	}
	return st, named
}

// keyFields resolves the key=A,B option against the struct's direct fields.
func keyFields(o option, typeName string, st *types.Struct, bad func(token.Pos, string, ...any)) []KeyField {
	fields := map[string]*types.Var{}
	var names []string
	for f := range st.Fields() {
		fields[f.Name()] = f
		names = append(names, f.Name())
	}
	var key []KeyField
	seen := map[string]bool{}
	for _, name := range strings.Split(o.val, ",") {
		f := fields[name]
		switch {
		case name == "":
			bad(o.pos, "key=%s has an empty field name; list the key fields, as in key=%s", o.val, strings.Join(names[:min(2, len(names))], ","))
			return nil
		case seen[name]:
			bad(o.pos, "key field %s is listed twice; list each once", name)
			return nil
		case f == nil:
			bad(o.pos, "key field %s: %s has no field %s; %s", name, typeName, name, suggestField(name, names))
			return nil
		}
		seen[name] = true
		kf, ok := keyField(f)
		if !ok {
			bad(o.pos, "key field %s has type %s; key fields must be strings or integers (or named types of them)", name, types.TypeString(f.Type(), types.RelativeTo(f.Pkg())))
			return nil
		}
		key = append(key, kf)
	}
	return key
}

func suggestField(name string, fields []string) string {
	best, bestDist := "", 3
	for _, f := range fields {
		if d := distance(strings.ToLower(name), strings.ToLower(f)); d < bestDist {
			best, bestDist = f, d
		}
	}
	if best != "" {
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

// checkUnique reports stores that share an id or a generated name, and generated names that
// are already declared in the package.
func checkUnique(fset *token.FileSet, stores []*Store, scope *types.Scope) []Diagnostic {
	var diags []Diagnostic
	ids := map[string]*Store{}
	names := map[string]*Store{}
	for _, s := range stores {
		if o := ids[s.ID]; o != nil {
			diags = append(diags, Diagnostic{s.Pos, fmt.Sprintf("store id %q is already used by %s (%s); give each store its own id", s.ID, o.Type.Obj().Name(), shortPos(fset, o.Pos))})
		} else {
			ids[s.ID] = s
		}
		for _, n := range s.Names() {
			if o := names[n]; o != nil {
				diags = append(diags, Diagnostic{s.Pos, fmt.Sprintf("%s is also generated for %s (%s); set name= to tell the stores apart", n, o.Type.Obj().Name(), shortPos(fset, o.Pos))})
				break
			}
			names[n] = s
			if obj := scope.Lookup(n); obj != nil {
				diags = append(diags, Diagnostic{s.Pos, fmt.Sprintf("%s would be generated but is already declared (%s); rename it or set name=", n, shortPos(fset, obj.Pos()))})
			}
		}
		codec := s.Type.Obj().Name() + "Codec"
		if obj := scope.Lookup(codec); obj != nil {
			diags = append(diags, Diagnostic{s.Pos, fmt.Sprintf("%s, the codec of %s, would be generated but is already declared (%s); rename that declaration", codec, s.Type.Obj().Name(), shortPos(fset, obj.Pos()))})
		}
		if s.Key != nil {
			if obj, _, _ := types.LookupFieldOrMethod(s.Type, true, s.Type.Obj().Pkg(), "EphemeralKey"); obj != nil {
				diags = append(diags, Diagnostic{s.Pos, fmt.Sprintf("%s already has a field or method EphemeralKey (%s); rename it", s.Type.Obj().Name(), shortPos(fset, obj.Pos()))})
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
