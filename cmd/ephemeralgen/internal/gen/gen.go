// Package gen is ephemeralgen's generation step: from package patterns to the contents of the
// output files, without writing anything. Writing and checking (-check) share it.
package gen

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"go/ast"
	"go/build/constraint"
	"go/token"
	"go/types"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/tools/go/packages"

	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/codecgen"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/emit"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/load"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/model"
)

// Suffix ends the name of every output file: presence.go → presence_ephemeral.go.
const Suffix = "_ephemeral.go"

// Config says what to generate.
type Config struct {
	load.Config
	// NewCodecs returns the codec emitter of one package; nil means codecgen's.
	NewCodecs func(fset *token.FileSet, pkg *types.Package) emit.Codecs
}

// File is one output file.
type File struct {
	Path    string // absolute
	Content []byte
}

// Diagnostic is one problem that prevents generation.
type Diagnostic struct {
	Pos token.Position // Filename is absolute; Line and Column may be 0
	Msg string
}

// Result is the outcome of [Generate].
type Result struct {
	Files   []File       // the output files, sorted by path
	Orphans []string     // generated files with no directive left behind them, sorted
	Diags   []Diagnostic // every problem found, sorted; when there are any, Files and Orphans are empty
}

// Generate loads the packages of cfg and returns the files ephemeralgen generates for them. It
// fails only when the packages cannot be listed at all; problems in them are in Result.Diags.
func Generate(cfg Config) (*Result, error) {
	newCodecs := cfg.NewCodecs
	if newCodecs == nil {
		newCodecs = func(fset *token.FileSet, pkg *types.Package) emit.Codecs { return codecgen.New(fset, pkg) }
	}
	fset, pkgs, err := load.Load(cfg.Config)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	for _, pkg := range pkgs {
		files, orphans, diags := generatePackage(fset, pkg, newCodecs)
		res.Files = append(res.Files, files...)
		res.Orphans = append(res.Orphans, orphans...)
		res.Diags = append(res.Diags, diags...)
	}
	if len(res.Diags) > 0 {
		slices.SortFunc(res.Diags, func(a, b Diagnostic) int {
			return cmp.Or(cmp.Compare(a.Pos.Filename, b.Pos.Filename), cmp.Compare(a.Pos.Line, b.Pos.Line),
				cmp.Compare(a.Pos.Column, b.Pos.Column), cmp.Compare(a.Msg, b.Msg))
		})
		res.Diags = slices.Compact(res.Diags)
		return &Result{Diags: res.Diags}, nil
	}
	slices.SortFunc(res.Files, func(a, b File) int { return cmp.Compare(a.Path, b.Path) })
	slices.Sort(res.Orphans)
	return res, nil
}

func generatePackage(fset *token.FileSet, pkg *load.Package, newCodecs func(*token.FileSet, *types.Package) emit.Codecs) ([]File, []string, []Diagnostic) {
	diags := packageErrors(fset, pkg)
	if pkg.Types == nil || pkg.TypesInfo == nil {
		return nil, nil, diags
	}
	stores, md := model.Parse(fset, pkg.Syntax, pkg.TypesInfo, pkg.Types.Scope())
	for _, d := range md {
		diags = append(diags, Diagnostic{fset.Position(d.Pos), d.Msg})
	}

	byOutput := map[string][]*model.Store{}
	for _, s := range stores {
		out := strings.TrimSuffix(s.File, ".go") + Suffix
		byOutput[out] = append(byOutput[out], s)
	}
	outputs := slices.Sorted(func(yield func(string) bool) {
		for out := range byOutput {
			if !yield(out) {
				return
			}
		}
	})
	codecs := newCodecs(fset, pkg.Types)
	for _, out := range outputs {
		if d, ok := foreignFile(out); !ok {
			diags = append(diags, d)
		}
		for _, s := range byOutput[out] {
			for _, d := range codecs.Add(filepath.Base(out), s.Type) {
				diags = append(diags, Diagnostic(d))
			}
		}
	}
	if len(diags) > 0 {
		return nil, nil, diags
	}

	goBuild := map[string]string{}
	for _, f := range pkg.Syntax {
		goBuild[fset.File(f.Pos()).Name()] = buildConstraint(f)
	}
	var files []File
	for _, out := range outputs {
		stores := byOutput[out]
		src, err := emit.File(pkg.Types, filepath.Base(out), goBuild[stores[0].File], stores, codecs)
		if err != nil {
			return nil, nil, []Diagnostic{{Pos: token.Position{Filename: out}, Msg: err.Error()}}
		}
		files = append(files, File{Path: out, Content: src})
	}
	var orphans []string
	for path := range pkg.Generated {
		if _, ok := byOutput[path]; !ok {
			orphans = append(orphans, path)
		}
	}
	return files, orphans, nil
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
func foreignFile(path string) (Diagnostic, bool) {
	src, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || err == nil && load.IsGenerated(src) {
		return Diagnostic{}, true
	}
	msg := fmt.Sprintf("%s exists and was not generated by ephemeralgen; rename it so that the output can be written", filepath.Base(path))
	if err != nil {
		msg = err.Error()
	}
	return Diagnostic{Pos: token.Position{Filename: path}, Msg: msg}, false
}

var (
	undefinedRE = regexp.MustCompile(`^undefined: (\w+)$`)
	noMethodRE  = regexp.MustCompile(`has no field or method (\w+)\)?$`)
	positionRE  = regexp.MustCompile(`^(.*?):(\d+)(?::(\d+))?$`)
)

// packageErrors returns the errors of pkg, but for those in files ephemeralgen generated and
// type errors that only say that an identifier it is about to generate is missing.
func packageErrors(fset *token.FileSet, pkg *load.Package) []Diagnostic {
	pending := map[string]bool{}
	for _, n := range model.Candidates(fset, pkg.Syntax) {
		pending[n] = true
	}
	var diags []Diagnostic
	for _, e := range pkg.Errors {
		pos := parsePosition(e.Pos)
		if pkg.Generated[pos.Filename] {
			continue
		}
		if e.Kind == packages.TypeError {
			if m := undefinedRE.FindStringSubmatch(e.Msg); m != nil && pending[m[1]] {
				continue
			}
			if m := noMethodRE.FindStringSubmatch(e.Msg); m != nil && pending[m[1]] {
				continue
			}
		}
		if pos.Filename == "" {
			pos.Filename = pkg.PkgPath
		}
		diags = append(diags, Diagnostic{pos, e.Msg})
	}
	return diags
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

// String formats d as file:line:col: msg, with the file name relative to dir when it is inside
// it.
func (d Diagnostic) String(dir string) string {
	var b bytes.Buffer
	name := d.Pos.Filename
	if rel, err := filepath.Rel(dir, name); err == nil && filepath.IsAbs(name) && !strings.HasPrefix(rel, "..") {
		name = rel
	}
	b.WriteString(name)
	if d.Pos.Line > 0 {
		fmt.Fprintf(&b, ":%d", d.Pos.Line)
		if d.Pos.Column > 0 {
			fmt.Fprintf(&b, ":%d", d.Pos.Column)
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(d.Msg)
	return b.String()
}
