package main

import (
	"fmt"
	"go/token"
	"go/types"
	"slices"

	"github.com/dave/jennifer/jen"

	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/codecgen"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/emit"
)

// fakeCodecs stands in for codecgen in the golden tests, so that they test this package's
// output only: its codecs delegate to encoding/json, and it refuses channel and func fields.
type fakeCodecs struct {
	fset  *token.FileSet
	types map[string][]*types.Named
}

func newFakeCodecs(fset *token.FileSet, _ *types.Package) emit.Codecs {
	return &fakeCodecs{fset: fset, types: map[string][]*types.Named{}}
}

func (c *fakeCodecs) Add(file string, t *types.Named) []codecgen.Diagnostic {
	c.types[file] = append(c.types[file], t)
	var diags []codecgen.Diagnostic
	st := t.Underlying().(*types.Struct)
	for f := range st.Fields() {
		switch f.Type().Underlying().(type) {
		case *types.Chan, *types.Signature:
			diags = append(diags, codecgen.Diagnostic{
				Pos: c.fset.Position(f.Pos()),
				Msg: fmt.Sprintf("field %s.%s has unsupported type %s", t.Obj().Name(), f.Name(), f.Type()),
			})
		}
	}
	return diags
}

func (c *fakeCodecs) Emit(file string, f *jen.File) {
	ts := slices.Clone(c.types[file])
	slices.SortFunc(ts, func(a, b *types.Named) int { return int(a.Obj().Pos() - b.Obj().Pos()) })
	for _, t := range ts {
		name := t.Obj().Name()
		codec := name + "Codec"
		f.Commentf("%s encodes %s with encoding/json (a test stand-in for codecgen).", codec, name)
		f.Type().Id(codec).Struct()
		f.Comment("Encode appends the JSON encoding of *v to dst.")
		f.Func().Params(jen.Id(codec)).Id("Encode").Params(jen.Id("dst").Index().Byte(), jen.Id("v").Op("*").Id(name)).Params(jen.Index().Byte(), jen.Error()).Block(
			jen.List(jen.Id("b"), jen.Err()).Op(":=").Qual("encoding/json", "Marshal").Call(jen.Id("v")),
			jen.Return(jen.Append(jen.Id("dst"), jen.Id("b").Op("...")), jen.Err()),
		)
		f.Comment("Decode parses src into *v.")
		f.Func().Params(jen.Id(codec)).Id("Decode").Params(jen.Id("src").Index().Byte(), jen.Id("v").Op("*").Id(name)).Error().Block(
			jen.Return(jen.Qual("encoding/json", "Unmarshal").Call(jen.Id("src"), jen.Id("v"))),
		)
	}
}
