package emit

import (
	"go/token"
	"go/types"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dave/jennifer/jen"
)

func TestWrapComments(t *testing.T) {
	long := "// " + strings.Repeat("word ", 30) + "end."
	src := "package p\n\n" + long + "\nfunc f() {\n\t" + long + "\n\tx := `// " + strings.Repeat("raw ", 30) + "`\n}\n"
	got := string(wrapComments([]byte(src)))
	for line := range strings.Lines(got) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(strings.TrimLeft(line, "\t"), "//") && utf8.RuneCountInString(line) > maxLine {
			t.Errorf("comment line of %d characters: %q", utf8.RuneCountInString(line), line)
		}
	}
	if !strings.Contains(got, "\n\t// word") || strings.Count(got, "end.") != 2 {
		t.Errorf("indentation or text lost:\n%s", got)
	}
	if !strings.Contains(got, "x := `// "+strings.Repeat("raw ", 30)+"`") {
		t.Errorf("a line that is not a comment was changed:\n%s", got)
	}
	if strings.Join(strings.Fields(strings.ReplaceAll(got, "//", "")), " ") != strings.Join(strings.Fields(strings.ReplaceAll(src, "//", "")), " ") {
		t.Errorf("words changed:\n%s", got)
	}
}

// TestNewFileNames checks that imports whose names the package declares, or that two packages
// share, get distinct aliases.
func TestNewFileNames(t *testing.T) {
	pkg := types.NewPackage("example.com/app", "app")
	for _, name := range []string{"jsonc", "other"} {
		pkg.Scope().Insert(types.NewVar(token.NoPos, pkg, name, types.Typ[types.Int]))
	}
	named := func(path, name string) *types.Named {
		p := types.NewPackage(path, "other")
		return types.NewNamed(types.NewTypeName(token.NoPos, p, name, nil), types.Typ[types.Int], nil)
	}
	value := types.NewStruct([]*types.Var{
		types.NewField(token.NoPos, pkg, "A", named("example.com/a/other", "A"), false),
		types.NewField(token.NoPos, pkg, "B", types.NewSlice(types.NewPointer(named("example.com/b/other", "B"))), false),
	}, nil)
	f, names := NewFile(pkg, []types.Type{value}, "header")
	want := map[string]string{
		RootPath: "ephemeral", "github.com/ephemeral-go/ephemeral/runtime/jsonc": "jsonc2", "time": "time",
		"example.com/a/other": "other2", "example.com/b/other": "other3",
	}
	for path, name := range want {
		if names[path] != name {
			t.Errorf("import %s named %q, want %q", path, names[path], name)
		}
	}
	f.Var().Id("_").Op("=").List(jen.Qual("example.com/a/other", "A"), jen.Qual("example.com/b/other", "B"))
	src, err := Render(f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), "var _ = other2.A, other3.B") {
		t.Errorf("rendered:\n%s", src)
	}
}

func TestParamName(t *testing.T) {
	for field, want := range map[string]string{
		"Room": "room", "UserID": "userID", "ID": "id", "HTTPHost": "httpHost",
		"Type": "type_", "String": "string_", "Ephemeral": "ephemeral_",
	} {
		if got := paramName(field, "ephemeral"); got != want {
			t.Errorf("paramName(%q) = %q, want %q", field, got, want)
		}
	}
}
