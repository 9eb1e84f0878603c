package main

import (
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/directive"
)

// TestManualOptions checks that the list of options in the package documentation is the one
// that the directive's table of options renders. The list is kept in main.go, rather than
// generated into it, so that the manual reads as one piece; this test keeps the two in step:
// when it fails, paste the list it prints into main.go.
func TestManualOptions(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	if want := directive.Manual(); !strings.Contains(f.Doc.Text(), want) {
		t.Errorf("the package documentation does not list the options of the directive's table; write them as:\n%s",
			"//"+strings.ReplaceAll(strings.TrimSuffix(want, "\n"), "\n", "\n//"))
	}
}
