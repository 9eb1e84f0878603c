// Package gen is ephemeralgen's generation step: from package patterns to the contents of the
// output files, without writing anything. Writing and checking (-check) share it.
package gen

import (
	"cmp"
	"errors"
	"fmt"
	"go/ast"
	"go/build/constraint"
	"go/token"
	"go/types"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/tools/go/packages"

	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/codec"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/diag"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/emit"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/load"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/model"
)

// Suffix ends the name of every output file: presence.go → presence_ephemeral.go.
const Suffix = "_ephemeral.go"

// File is one output file.
type File struct {
	Path    string // absolute
	Content []byte
	// NoGoGenerate says that no //go:generate line in the package's files names ephemeralgen,
	// so that go generate would not write the file.
	NoGoGenerate bool
}

// Result is the outcome of [Generate].
type Result struct {
	Files   []File            // the output files of the packages without errors, sorted by path
	Orphans []string          // generated files with no directive left behind them, sorted
	Diags   []diag.Diagnostic // every problem found, sorted
}

// Generate loads the packages of cfg and returns the files ephemeralgen generates for them. It
// fails only when the packages cannot be listed at all; problems in them are in Result.Diags.
func Generate(cfg load.Config) (*Result, error) {
	fset, pkgs, testDirectives, err := load.Load(cfg)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	for _, at := range testDirectives {
		res.Diags = append(res.Diags, diag.Warningf(at, "%s in a _test.go file is ignored: ephemeralgen reads only the files that a build of the package compiles; declare the type in a file whose name does not end in _test.go", load.Directive+"store"))
	}
	for _, pkg := range pkgs {
		files, orphans, diags := generatePackage(fset, pkg)
		res.Files = append(res.Files, files...)
		res.Orphans = append(res.Orphans, orphans...)
		res.Diags = append(res.Diags, diags...)
	}
	res.Diags = diag.Sort(res.Diags)
	slices.SortFunc(res.Files, func(a, b File) int { return cmp.Compare(a.Path, b.Path) })
	slices.Sort(res.Orphans)
	return res, nil
}

// generatePackage generates the files of pkg. The errors of its load are reported when it
// cannot be generated; when it can, its type errors are those of the package with the files
// generated (see [load.Package.Recheck]): the load type-checks it without its generated
// declarations, and its other errors (a parse error, say) stop the generation. Errors in the
// generated files are reported only when the package has none of its own: they are then
// ephemeralgen's, else they follow from the package's.
func generatePackage(fset *token.FileSet, pkg *load.Package) ([]File, []string, []diag.Diagnostic) {
	diags, typeDiags := packageErrors(fset, pkg)
	if diag.HasErrors(diags) || pkg.Types == nil || pkg.TypesInfo == nil {
		return nil, nil, append(diags, typeDiags...)
	}
	stores, rejected, md := model.Parse(fset, pkg.Syntax, pkg.TypesInfo, pkg.Types.Scope())
	diags = append(diags, md...)
	codecs := codec.New(fset, pkg.Types)
	for _, s := range rejected {
		// Nothing is generated (md has the directive's problem), but the problems of the
		// fields are reported now, not after the directive is put right.
		diags = append(diags, codecs.Add("", s.Type, "")...)
	}

	byOutput := map[string][]*model.Store{}
	for _, s := range stores {
		out := strings.TrimSuffix(s.File, ".go") + Suffix
		byOutput[out] = append(byOutput[out], s)
	}
	outputs := slices.Sorted(maps.Keys(byOutput))
	for _, out := range outputs {
		if d, ok := foreignFile(out); !ok {
			diags = append(diags, d)
		}
		for _, s := range byOutput[out] {
			diags = append(diags, codecs.Add(filepath.Base(out), s.Type, s.Ident("Codec"))...)
		}
	}
	if diag.HasErrors(diags) {
		return nil, nil, append(diags, typeDiags...)
	}

	goBuild := map[string]string{}
	noGoGenerate := true
	for _, f := range pkg.Syntax {
		goBuild[fset.File(f.Pos()).Name()] = buildConstraint(f)
		noGoGenerate = noGoGenerate && !runsEphemeralgen(f)
	}
	var files []File
	for _, out := range outputs {
		stores := byOutput[out]
		src, err := emit.File(pkg.Types, filepath.Base(out), goBuild[stores[0].File], stores, codecs)
		if err != nil {
			if len(typeDiags) > 0 {
				// A type of the package with an error (in a field the codec leaves out
				// of a struct type it writes, say) is likely why: its errors are reported.
				return nil, nil, append(diags, typeDiags...)
			}
			return nil, nil, append(diags, diag.Diagnostic{Pos: token.Position{Filename: out}, Msg: err.Error()})
		}
		files = append(files, File{Path: out, Content: src, NoGoGenerate: noGoGenerate})
	}
	if hd := hiddenDiags(fset, pkg, outputs, byOutput, codecs); len(hd) > 0 {
		return nil, nil, append(diags, hd...)
	}
	out := map[string][]byte{}
	for _, f := range files {
		out[f.Path] = f.Content
	}
	errs, err := pkg.Recheck(fset, out)
	if err != nil {
		return nil, nil, append(diags, diag.Diagnostic{Pos: token.Position{Filename: pkg.PkgPath}, Msg: err.Error()})
	}
	if len(errs) > 0 {
		// The follow-ons of an operand of unknown type are left out when their cause is
		// reported (see unknownRE).
		causes := slices.DeleteFunc(slices.Clone(errs), func(e packages.Error) bool { return unknownRE.MatchString(e.Msg) })
		if len(causes) > 0 {
			errs = causes
		}
		// When the package has errors of its own, those in the output follow from them (an
		// instance of a generic type whose type argument does not satisfy its constraint is
		// an error wherever the output names it too): only the package's are reported.
		own := slices.DeleteFunc(slices.Clone(errs), func(e packages.Error) bool {
			_, ours := out[errorDiag(e, pkg.PkgPath).Pos.Filename]
			return ours
		})
		if len(own) > 0 {
			errs = own
		}
		for _, e := range errs {
			d := errorDiag(e, pkg.PkgPath)
			if _, ours := out[d.Pos.Filename]; ours {
				// An error in the output is ephemeralgen's: a clash its checks did not foresee.
				d.Msg = strings.TrimSpace(d.Msg) + " (in the code ephemeralgen would write, so nothing was written: please report this as a bug of ephemeralgen, with the annotated type)"
			}
			diags = append(diags, d)
		}
		return nil, nil, diags
	}
	var orphans []string
	for path := range pkg.Generated {
		if _, ok := byOutput[path]; !ok {
			orphans = append(orphans, path)
		}
	}
	return files, orphans, diags
}

// hiddenDiags reports each declaration of pkg that hides a predeclared identifier that the
// code generated in the output files (paths outputs, of the stores byOutput) refers to, such
// as a function len or a type error: the code cannot compile until it is renamed.
func hiddenDiags(fset *token.FileSet, pkg *load.Package, outputs []string, byOutput map[string][]*model.Store, codecs *codec.Generator) []diag.Diagnostic {
	scope := pkg.Types.Scope()
	if !slices.ContainsFunc(scope.Names(), func(n string) bool { return types.Universe.Lookup(n) != nil }) {
		return nil // hides none: the output files need not be rendered again to look
	}
	var diags []diag.Diagnostic
	seen := map[string]bool{}
	for _, out := range outputs {
		names, err := emit.Hidden(pkg.Types, filepath.Base(out), byOutput[out], codecs)
		if err != nil {
			return []diag.Diagnostic{{Pos: token.Position{Filename: out}, Msg: err.Error()}}
		}
		for _, name := range names {
			if seen[name] {
				continue
			}
			seen[name] = true
			kind := "identifier"
			switch types.Universe.Lookup(name).(type) {
			case *types.Builtin:
				kind = "function"
			case *types.TypeName:
				kind = "type"
			case *types.Const:
				kind = "constant"
			}
			msg := fmt.Sprintf("%s hides the predeclared %s %s, which the code generated in %s refers to; rename it",
				name, kind, name, filepath.Base(out))
			if name == "len" {
				msg += " (the code calls len only where omitempty tests a slice or map)"
			}
			diags = append(diags, diag.Diagnostic{Pos: fset.Position(scope.Lookup(name).Pos()), Msg: msg})
		}
	}
	return diags
}

// runsEphemeralgen reports whether a //go:generate line of f names ephemeralgen.
func runsEphemeralgen(f *ast.File) bool {
	for _, g := range f.Comments {
		for _, c := range g.List {
			if d, ok := ast.ParseDirective(c.Slash, c.Text); ok && d.Tool == "go" && d.Name == "generate" && strings.Contains(d.Args, "ephemeralgen") {
				return true
			}
		}
	}
	return false
}

// buildConstraint returns the //go:build line of f, or "".
func buildConstraint(f *ast.File) string {
	for _, g := range f.Comments {
		if g.Pos() > f.Package {
			break
		}
		for _, c := range g.List {
			if constraint.IsGoBuild(c.Text) {
				return c.Text
			}
		}
	}
	return ""
}

// foreignFile reports (ok false) an output path taken by a file ephemeralgen did not write.
func foreignFile(path string) (diag.Diagnostic, bool) {
	src, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || err == nil && load.IsGenerated(src) {
		return diag.Diagnostic{}, true
	}
	msg := fmt.Sprintf("%s exists and was not generated by ephemeralgen; rename it so that the output can be written", filepath.Base(path))
	if err != nil {
		msg = err.Error()
	}
	return diag.Diagnostic{Pos: token.Position{Filename: path}, Msg: msg}, false
}

var (
	undefinedRE = regexp.MustCompile(`^undefined: (\w+)$`)
	noMethodRE  = regexp.MustCompile(`has no field or method (\w+)\)?$`)
	// unknownRE matches what go/types says of a call or a return whose operands include one
	// of invalid type ("have (unknown type)"), as f(g()) where g's results are unknown: the
	// consequence of an error at the operand, which is reported there, or is one of the
	// missing identifiers.
	unknownRE  = regexp.MustCompile(`\n\thave \([^)]*\bunknown type\b`)
	positionRE = regexp.MustCompile(`^(.*?):(\d+)(?::(\d+))?$`)
)

// packageErrors returns the errors of pkg's load: its type errors apart, and of those only the
// ones that do not just say that an identifier ephemeralgen is about to generate is missing,
// or follow from an operand of unknown type; none in the files ephemeralgen generated. The
// type errors are what is reported when the package cannot be generated (otherwise see
// [load.Package.Recheck]).
func packageErrors(fset *token.FileSet, pkg *load.Package) (diags, typeDiags []diag.Diagnostic) {
	pending := map[string]bool{}
	for _, n := range model.Candidates(fset, pkg.Syntax) {
		pending[n] = true
	}
	for _, e := range pkg.Errors {
		if pkg.Generated[parsePosition(e.Pos).Filename] {
			continue
		}
		if e.Kind != packages.TypeError {
			diags = append(diags, errorDiag(e, pkg.PkgPath))
			continue
		}
		if m := undefinedRE.FindStringSubmatch(e.Msg); m != nil && pending[m[1]] {
			continue
		}
		if m := noMethodRE.FindStringSubmatch(e.Msg); m != nil && pending[m[1]] {
			continue
		}
		if unknownRE.MatchString(e.Msg) {
			continue
		}
		typeDiags = append(typeDiags, errorDiag(e, pkg.PkgPath))
	}
	return diags, typeDiags
}

// errorDiag returns the diagnostic of e, an error of the package at path.
func errorDiag(e packages.Error, path string) diag.Diagnostic {
	pos := parsePosition(e.Pos)
	if pos.Filename == "" {
		pos.Filename = path
	}
	return diag.Diagnostic{Pos: pos, Msg: e.Msg}
}

// parsePosition parses the "file:line:col" of a packages.Error.
func parsePosition(s string) token.Position {
	m := positionRE.FindStringSubmatch(s)
	if m == nil {
		if s == "-" {
			s = ""
		}
		return token.Position{Filename: s}
	}
	line, _ := strconv.Atoi(m[2])
	col, _ := strconv.Atoi(m[3])
	return token.Position{Filename: m[1], Line: line, Column: col}
}
