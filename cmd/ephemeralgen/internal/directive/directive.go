// Package directive reads the //ephemeral:store lines of Go source files: where they may stand,
// their options, and the one table of those options that the parser, the emitter's Config
// literal and the command's manual all read.
package directive

import (
	"fmt"
	"go/ast"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/diag"
)

// Verb is the directive that declares a store.
const Verb = "//ephemeral:store"

// prefix starts every ephemeralgen directive.
const prefix = "//ephemeral:"

// Limits on store ids and tenants, those of package ephemeral.
const (
	maxIDBytes     = 256
	maxTenantBytes = 256
)

// Settings are the values of a directive's options. The zero value of a field means that its
// option is not given.
type Settings struct {
	ID     string
	TTL    time.Duration
	Key    []string // the key fields' names, in key order; nil when keys are plain strings
	Tenant string   // "" means ephemeral.DefaultTenant
	Limits Limits
	Name   string // the prefix of the generated identifiers; the type's name unless name= is given
}

// Limits are the limits a directive sets, named like the fields of ephemeral.Limits; zero
// means the default.
type Limits struct {
	MaxEntries      int
	MaxPayloadBytes int
	EventRetention  time.Duration
	MaxEvents       int
}

// Option is one option of the directive: a row of [Options].
type Option struct {
	Name     string // as written in the directive, such as maxPayload
	Value    string // the value's placeholder in the manual, such as <n>
	Doc      string // the manual's one-line description
	Required bool
	// Field is the field of ephemeral.Config that the option sets, such as
	// Limits.MaxPayloadBytes, or "" for an option that is not part of the Config.
	Field string

	set func(s *Settings, val string) error // parses val and applies it to s
	get func(s *Settings) any               // the value in s
}

// Get returns o's value in s: a string, an int, a time.Duration or a []string; the zero value
// when the option is not given.
func (o *Option) Get(s *Settings) any { return o.get(s) }

// option returns the row of an option whose values parse returns and at locates in a Settings.
func option[T any](name, value, doc string, required bool, field string, parse func(name, val string) (T, error), at func(*Settings) *T) Option {
	return Option{
		Name: name, Value: value, Doc: doc, Required: required, Field: field,
		set: func(s *Settings, val string) error {
			v, err := parse(name, val)
			if err == nil {
				*at(s) = v
			}
			return err
		},
		get: func(s *Settings) any { return *at(s) },
	}
}

// Options is the table of the directive's options, in the manual's order.
var Options = []Option{
	option("id", "<id>", "the store id, 1 to 256 bytes", true, "ID",
		parseText(maxIDBytes), func(s *Settings) *string { return &s.ID }),
	option("ttl", "<duration>", "the default time-to-live, a positive Go duration (30s, 5m)", true, "TTL",
		parseDuration, func(s *Settings) *time.Duration { return &s.TTL }),
	option("key", "<Field>,...", "the key fields, in key order (default: keys are plain strings)", false, "",
		parseKey, func(s *Settings) *[]string { return &s.Key }),
	option("tenant", "<tenant>", "the default tenant, 1 to 256 bytes (default \"default\")", false, "Tenant",
		parseText(maxTenantBytes), func(s *Settings) *string { return &s.Tenant }),
	option("maxEntries", "<n>", "live entries per tenant (default 10,000)", false, "Limits.MaxEntries",
		parseCount, func(s *Settings) *int { return &s.Limits.MaxEntries }),
	option("maxPayload", "<n>", "encoded value size in bytes (default 4,096)", false, "Limits.MaxPayloadBytes",
		parseCount, func(s *Settings) *int { return &s.Limits.MaxPayloadBytes }),
	option("retention", "<duration>", "how long events are kept (default 5m)", false, "Limits.EventRetention",
		parseDuration, func(s *Settings) *time.Duration { return &s.Limits.EventRetention }),
	option("maxEvents", "<n>", "events kept per tenant (default 50,000)", false, "Limits.MaxEvents",
		parseCount, func(s *Settings) *int { return &s.Limits.MaxEvents }),
	option("name", "<Name>", "the prefix of the generated names (default: the type's name)", false, "",
		parseName, func(s *Settings) *string { return &s.Name }),
}

// lookup returns the option called name, or nil.
func lookup(name string) *Option {
	for i := range Options {
		if Options[i].Name == name {
			return &Options[i]
		}
	}
	return nil
}

// Manual returns the list of options for the command's documentation: one line per option,
// indented by a tab, with the option's form and its description.
func Manual() string {
	var b strings.Builder
	for _, o := range Options {
		doc := o.Doc
		if o.Required {
			doc += "; required"
		}
		fmt.Fprintf(&b, "\t%-20s %s\n", o.Name+"="+o.Value, doc)
	}
	return b.String()
}

func parseText(maxBytes int) func(name, val string) (string, error) {
	return func(name, val string) (string, error) {
		if val == "" || len(val) > maxBytes {
			return "", fmt.Errorf("%s must have 1 to %d bytes, not %d", name, maxBytes, len(val))
		}
		return val, nil
	}
}

func parseDuration(name, val string) (time.Duration, error) {
	d, err := time.ParseDuration(val)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%s=%s is not a duration; write a Go duration such as %s=30s, 5m or 1h30m", name, val, name)
	case d <= 0:
		return 0, fmt.Errorf("%s=%s must be positive, such as %s=30s", name, val, name)
	}
	return d, nil
}

func parseCount(name, val string) (int, error) {
	n, err := strconv.Atoi(val)
	if err != nil || n <= 0 || strconv.Itoa(n) != val {
		return 0, fmt.Errorf("%s=%s is not a positive integer; write one such as %s=1000", name, val, name)
	}
	return n, nil
}

func parseKey(name, val string) ([]string, error) {
	if val == "" {
		return nil, fmt.Errorf("%s= lists no field; list the key fields, separated by commas, as in %s=Room,UserID, or leave %s= out for plain string keys", name, name, name)
	}
	fields := strings.Split(val, ",")
	for i, f := range fields {
		switch {
		case f == "":
			return nil, fmt.Errorf("%s=%s has an empty field name, a comma too many; list the key fields, separated by single commas, as in %s=Room,UserID", name, val, name)
		case !token.IsIdentifier(f):
			return nil, fmt.Errorf("%s=%s has a field name that is not a Go identifier; list the key fields, separated by commas, as in %s=Room,UserID", name, val, name)
		case slices.Contains(fields[:i], f):
			return nil, fmt.Errorf("key field %s is listed twice; list each once", f)
		}
	}
	return fields, nil
}

func parseName(name, val string) (string, error) {
	if !token.IsIdentifier(val) {
		return "", fmt.Errorf("%s=%s is not a Go identifier; write one such as %s=Hold", name, val, name)
	}
	return val, nil
}

// Directive is one //ephemeral:store line in the doc comment of a type declaration.
type Directive struct {
	Pos  token.Pos     // the start of the line
	File string        // the name of the file that holds it
	Type *ast.TypeSpec // the annotated type
	Settings
	Given map[string]token.Pos // the options given, at the positions of their names
	// Invalid is set when an option has a problem, which is among the diagnostics of Find.
	Invalid bool
}

// Find returns the directives of file f and the problems of their syntax and options, and
// warns about comments that look like a directive but are not one, such as
// "// ephemeral:store ...".
func Find(fset *token.FileSet, f *ast.File) ([]*Directive, []diag.Diagnostic) {
	docs := typeDocs(f)
	var (
		dirs  []*Directive
		diags []diag.Diagnostic
		seen  = map[*ast.TypeSpec]bool{}
	)
	errorf := func(pos token.Pos, format string, args ...any) {
		diags = append(diags, diag.Errorf(fset.Position(pos), format, args...))
	}
	for _, g := range f.Comments {
		for _, c := range g.List {
			rest, ok := strings.CutPrefix(c.Text, prefix)
			if !ok {
				if msg := nearMiss(c.Text); msg != "" {
					diags = append(diags, diag.Warningf(fset.Position(c.Pos()), "%s", msg))
				}
				continue
			}
			verb, args := rest, ""
			if i := strings.IndexAny(rest, " \t"); i >= 0 {
				verb, args = rest[:i], rest[i:]
			}
			if verb != "store" {
				errorf(c.Pos(), "unknown directive %s%s; write %s", prefix, verb, Verb)
				continue
			}
			spec := docs[g]
			if spec == nil {
				if name := detached(fset, f, g); name != "" {
					errorf(c.Pos(), "%s must be in the doc comment of %s, right above type %s struct: remove the blank line between them", Verb, name, name)
					continue
				}
				errorf(c.Pos(), "%s must be in the doc comment of a package-level type declaration, right above type T struct", Verb)
				continue
			}
			if seen[spec] {
				errorf(c.Pos(), "%s has more than one %s directive; keep one", spec.Name.Name, Verb)
				continue
			}
			seen[spec] = true
			d := &Directive{Pos: c.Pos(), File: fset.File(c.Pos()).Name(), Type: spec, Given: map[string]token.Pos{}}
			d.Name = spec.Name.Name
			invalid := func(pos token.Pos, format string, args ...any) {
				d.Invalid = true
				errorf(pos, format, args...)
			}
			d.parseOptions(args, c.Pos()+token.Pos(len(c.Text)-len(args)), invalid)
			for _, o := range Options {
				if _, ok := d.Given[o.Name]; o.Required && !ok {
					invalid(c.Pos(), "%s needs %s=%s, %s", Verb, o.Name, o.Value, o.Doc)
				}
			}
			dirs = append(dirs, d)
		}
	}
	return dirs, diags
}

// detached returns the name of the type that comment group g of f would be the doc comment of
// but for blank lines between them: the next declaration of f is the declaration of one type,
// without a doc comment of its own, and only blank lines come between. Else it returns "".
func detached(fset *token.FileSet, f *ast.File, g *ast.CommentGroup) string {
	for _, d := range f.Decls {
		if d.Pos() < g.End() {
			continue
		}
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE || gd.Doc != nil || len(gd.Specs) != 1 || gd.Lparen.IsValid() {
			return ""
		}
		for _, other := range f.Comments {
			if other.Pos() > g.End() && other.End() < gd.Pos() {
				return ""
			}
		}
		if fset.Position(gd.Pos()).Line-fset.Position(g.End()).Line < 2 {
			return ""
		}
		return gd.Specs[0].(*ast.TypeSpec).Name.Name
	}
	return ""
}

// nearMiss returns the warning for a comment that looks like a store directive but is not
// one, or "" for any other comment.
func nearMiss(text string) string {
	body, block := strings.CutPrefix(text, "/*")
	if !block {
		body = strings.TrimPrefix(text, "//")
	}
	body = strings.TrimLeft(body, " \t")
	rest, ok := strings.CutPrefix(body, "ephemeral:store")
	if !ok || rest != "" && !strings.ContainsAny(rest[:1], " \t*") {
		return ""
	}
	if block {
		return fmt.Sprintf("this block comment is not a directive and is ignored; write a line comment, %s", Verb)
	}
	return fmt.Sprintf("this comment is not a directive and is ignored; write %s, with no space after the slashes", Verb)
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

// parseOptions parses the space-separated name=value options of args, which starts at pos,
// into d.
func (d *Directive) parseOptions(args string, pos token.Pos, errorf func(token.Pos, string, ...any)) {
	for off := 0; off < len(args); {
		start := off + strings.IndexFunc(args[off:], func(r rune) bool { return r != ' ' && r != '\t' })
		if start < off {
			break
		}
		end := start + strings.IndexAny(args[start:], " \t")
		if end < start {
			end = len(args)
		}
		quoted, unclosed := false, false
		if eq := strings.IndexByte(args[start:end], '='); eq >= 0 && start+eq+1 < len(args) && strings.IndexByte("\"'`", args[start+eq+1]) >= 0 {
			// A quoted value, maybe with spaces: the option ends at its closing quote, or
			// where it would without the quote if there is none.
			quoted = true
			q := start + eq + 1
			if closing := strings.IndexByte(args[q+1:], args[q]); closing >= 0 {
				end = max(end, q+1+closing+1)
			} else {
				unclosed = true
			}
		}
		if strings.HasPrefix(args[start:], "//") || strings.HasPrefix(args[start:], "/*") {
			// A comment after the options, which would be read as more of them.
			errorf(pos+token.Pos(start), "%s takes options only, not a comment after them; put the comment on a line of its own", Verb)
			break
		}
		if !quoted {
			if joined := spacedEnd(args, start, end); joined > end {
				// An option written with spaces in it, such as ttl = 30s or key=Room, UserID.
				field := args[start:joined]
				written := strings.Join(strings.Fields(field), "")
				name, _, _ := strings.Cut(written, "=")
				d.Given[name] = pos + token.Pos(start) // given, if badly
				errorf(pos+token.Pos(start), "option %s: %q has spaces in it; an option is written without spaces, as in %s", name, field, written)
				off = joined
				continue
			}
		}
		off = end
		field, at := args[start:end], pos+token.Pos(start)
		name, val, ok := strings.Cut(field, "=")
		o := lookup(name)
		bare := strings.ReplaceAll(strings.Trim(val, "\"'`"), " ", "-")
		if next := runOn(val); ok && !quoted && o != nil && next != "" {
			// Options separated by commas, such as id=a,ttl=30s: the value runs into the next.
			d.Given[name] = at
			parts := strings.Split(field, ",")
			written := parts[0]
			for _, f := range parts[1:] {
				if n, _, ok := strings.Cut(f, "="); ok && lookup(n) != nil {
					if !d.Given[n].IsValid() {
						d.Given[n] = at
					}
					written += " " + f
				} else {
					written += "," + f
				}
			}
			errorf(at, "option %s: its value runs into %s; options are separated by spaces, not commas, as in %s", name, next, written)
			continue
		}
		switch {
		case quoted && o != nil:
			d.Given[name] = at // given, if badly
			switch {
			case unclosed:
				errorf(at, "option %s: its quote is not closed; a value is written bare, without quotes, and has no spaces", name)
			case bare == "":
				errorf(at, "option %s: a value is written bare, without quotes", name)
			default:
				errorf(at, "option %s: a value is written bare, without quotes, and has no spaces, as in %s=%s", name, name, bare)
			}
		case !ok:
			errorf(at, "option %q is not of the form name=value, as in ttl=30s", field)
		case o == nil:
			errorf(at, "%s", unknownOption(name))
		case d.Given[name].IsValid():
			errorf(at, "option %s is given twice; keep one", name)
		default:
			d.Given[name] = at
			if err := o.set(&d.Settings, val); err != nil {
				errorf(at, "%v", err)
			}
		}
	}
}

// spacedEnd returns the end of the option that starts at args[start:end] if spaces split it,
// as in "ttl = 30s", "ttl= 30s" or "key=Room, UserID": a known option's name followed by a
// word that starts with "=", a name= followed by a word without "=", or a value that ends with
// a comma (or is followed by a word that starts with one) and then a word without "=". It
// returns end when the option has no such spaces.
func spacedEnd(args string, start, end int) int {
	joined := end
	for {
		field := args[start:joined]
		ns := joined + strings.IndexFunc(args[joined:], func(r rune) bool { return r != ' ' && r != '\t' })
		if ns < joined {
			return joined
		}
		ne := ns + strings.IndexAny(args[ns:], " \t")
		if ne < ns {
			ne = len(args)
		}
		next := args[ns:ne]
		name, val, hasEq := strings.Cut(strings.Join(strings.Fields(field), ""), "=")
		if lookup(name) == nil || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/*") {
			return joined // not an option, or a comment follows (reported as such)
		}
		switch {
		case !hasEq && strings.HasPrefix(next, "="),
			hasEq && val == "" && !strings.Contains(next, "="),
			hasEq && val != "" && (strings.HasSuffix(val, ",") || strings.HasPrefix(next, ",")) && !strings.Contains(next, "="):
			joined = ne
		default:
			return joined
		}
	}
}

// runOn returns the option, such as ttl=30s, that a value written with commas between the
// options (id=a,ttl=30s) runs into, or "".
func runOn(val string) string {
	parts := strings.Split(val, ",")
	for _, f := range parts[1:] {
		if n, _, ok := strings.Cut(f, "="); ok && lookup(n) != nil {
			return f
		}
	}
	return ""
}

// unknownOption returns the message for an unknown option: a suggestion if one is close.
func unknownOption(name string) string {
	names := make([]string, len(Options))
	for i, o := range Options {
		names[i] = o.Name
	}
	if best := Closest(name, names); best != "" {
		return fmt.Sprintf("unknown option %s; did you mean %s?", name, best)
	}
	return fmt.Sprintf("unknown option %s; the options are %s", name, strings.Join(names, ", "))
}

// Closest returns the candidate closest to s, ignoring case, if it is within an edit distance
// of 2; else "".
func Closest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := distance(strings.ToLower(s), strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
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
