package codec_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/tools/go/packages"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func all(string) bool { return true }

func TestDiagnostics(t *testing.T) {
	_, diags, pkg := generate(t, "./testdata/bad", nil, func(name string) bool { return name == "Presence" },
		func(string) string { return "bad_gen.go" })
	src, err := os.ReadFile(pkg.GoFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	lineOf := func(s string) int {
		for i, l := range strings.Split(string(src), "\n") {
			if strings.Contains(l, s) {
				return i + 1
			}
		}
		t.Fatalf("no line with %q", s)
		return 0
	}
	want := []struct {
		line string
		msg  string
	}{
		{"Ch chan int", `field Presence.Meta.Ch: unsupported type chan int (supported: bool, integers, floats, string, []byte, time.Time, time.Duration, pointers, slices, arrays, maps with string, integer or text keys, structs, json.Marshaler/Unmarshaler, encoding.TextMarshaler/TextUnmarshaler; or tag it json:"-")`},
		{"Any     any", `field Presence.Any: unsupported type any`},
		{"Fn      func()", `field Presence.Fn: unsupported type func()`},
		{"C       complex128", `field Presence.C: unsupported type complex128`},
		{"Ptr     unsafe.Pointer", `field Presence.Ptr: unsupported type unsafe.Pointer`},
		{"Keys    map", `field Presence.Keys: unsupported map key type [2]int (use string, an integer type or a type with MarshalText and UnmarshalText)`},
		{"Zero    Flex", `field Presence.Zero: the omitzero option on type bad.Flex, which is not comparable and has no IsZero method, is not supported (give the type an IsZero method, or use omitempty)`},
		{"Quoted  Money", `field Presence.Quoted: the string option on type bad.Money`},
		{"Num     json.Number", `field Presence.Num: unsupported type json.Number (use float64, int64 or string)`},
	}
	if len(diags) != len(want) {
		for _, d := range diags {
			t.Logf("%s: %s", d.Pos, d.Msg)
		}
		t.Fatalf("got %d diagnostics, want %d", len(diags), len(want))
	}
	for i, w := range want {
		d := diags[i]
		if !strings.HasPrefix(d.Msg, w.msg) {
			t.Errorf("diagnostic %d = %q, want prefix %q", i, d.Msg, w.msg)
		}
		if wantLine := lineOf(w.line); d.Pos.Line != wantLine || filepath.Base(d.Pos.Filename) != "bad.go" || d.Pos.Column == 0 {
			t.Errorf("diagnostic %d (%s) at %s, want bad.go:%d", i, d.Msg, d.Pos, wantLine)
		}
	}
}

func TestDeterministic(t *testing.T) {
	const dir = "../../../../internal/codectest"
	first, _, _ := generate(t, dir, nil, all, func(string) string { return "codecs_gen.go" })
	second, _, _ := generate(t, dir, nil, all, func(string) string { return "codecs_gen.go" })
	if !bytes.Equal(first["codecs_gen.go"], second["codecs_gen.go"]) {
		t.Fatal("two runs emitted different output")
	}
}

// TestSharedHelpers generates two files whose types both need Inner's helpers, and checks that
// each helper is emitted once and that the package compiles.
func TestSharedHelpers(t *testing.T) {
	fileOf := func(name string) string {
		if name == "B" {
			return "b_gen.go"
		}
		return "a_gen.go"
	}
	out, diags, _ := generate(t, "./testdata/dup", nil, func(name string) bool { return name != "Inner" }, fileOf)
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	decl := regexp.MustCompile(`(?m)^func (ephemeral\w+)`)
	count := map[string]int{}
	for _, src := range out {
		for _, m := range decl.FindAllSubmatch(src, -1) {
			count[string(m[1])]++
		}
	}
	for _, name := range []string{"ephemeralEncodeInner", "ephemeralDecodeInner", "ephemeralCloneInner"} {
		if count[name] != 1 {
			t.Errorf("%s declared %d times, want once", name, count[name])
		}
	}
	if !bytes.Contains(out["a_gen.go"], []byte("func ephemeralEncodeInner(")) {
		t.Errorf("Inner's helpers are not in a_gen.go, the first file that needs them")
	}

	dir, err := filepath.Abs("testdata/dup")
	if err != nil {
		t.Fatal(err)
	}
	overlay := map[string][]byte{}
	for name, src := range out {
		overlay[filepath.Join(dir, name)] = src
	}
	pkgs, err := packages.Load(&packages.Config{Mode: loadMode, Overlay: overlay}, "./testdata/dup")
	if err != nil {
		t.Fatal(err)
	}
	if n := packages.PrintErrors(pkgs); n > 0 {
		t.Fatalf("generated package does not compile: %d errors", n)
	}
	if got := len(pkgs[0].GoFiles); got != 3 {
		t.Fatalf("compiled %d files, want 3", got)
	}
}
