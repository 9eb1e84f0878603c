// Package codecgen emits reflection-free JSON codecs, byte-identical to encoding/json, for the
// struct types of a package, on the primitives of runtime/jsonc.
package codecgen

import (
	"go/token"
	"go/types"

	"github.com/dave/jennifer/jen"
)

// Diagnostic is one problem found in a type, such as an unsupported field type.
type Diagnostic struct {
	Pos token.Position
	Msg string
}

// Generator collects the codecs one package needs and emits them into its output files.
type Generator struct {
	fset *token.FileSet
	pkg  *types.Package
}

// New returns a generator for codecs declared in pkg; fset resolves positions.
func New(fset *token.FileSet, pkg *types.Package) *Generator {
	return &Generator{fset: fset, pkg: pkg}
}

// Add requests the exported codec <Name>Codec for the struct type t (declared in the package),
// to be emitted in output file file, with everything it needs for the types it contains. It
// returns every problem found (unsupported field types, with the field's path).
func (g *Generator) Add(file string, t *types.Named) []Diagnostic {
	panic("codecgen: not implemented")
}

// Emit writes into f the declarations that belong to output file file: the codecs added for it
// and the helpers of contained types that were assigned to it (each emitted in exactly one
// file of the package). The output is deterministic.
func (g *Generator) Emit(file string, f *jen.File) {
	panic("codecgen: not implemented")
}
