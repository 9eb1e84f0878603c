package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/gen"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/load"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/golden")

// generateDir runs the generation step on the package in dir.
func generateDir(t *testing.T, dir string) *gen.Result {
	t.Helper()
	res, err := gen.Generate(load.Config{Dir: dir})
	if err != nil {
		t.Fatalf("Generate(%s): %v", dir, err)
	}
	return res
}

// TestGolden generates each package under testdata/golden and compares the output with the
// *_ephemeral.go files beside it (go test -update rewrites them), then vets the packages with
// their generated files, which proves that the output compiles, and runs their tests.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/golden/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			res := generateDir(t, dir)
			for _, d := range res.Diags {
				t.Errorf("diagnostic: %s", d.String(dir))
			}
			if len(res.Files) == 0 {
				t.Fatal("no output files")
			}
			for _, f := range res.Files {
				if *update {
					if err := os.WriteFile(f.Path, f.Content, 0o666); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(f.Path)
				if err != nil {
					t.Fatalf("%v (run go test -update)", err)
				}
				if !bytes.Equal(f.Content, want) {
					t.Errorf("%s is stale (run go test -update):\n%s", f.Path, unifiedDiff("golden", "generated", string(want), string(f.Content)))
				}
			}
			if len(res.Orphans) > 0 {
				t.Errorf("orphans: %q", res.Orphans)
			}
		})
	}
	if *update || t.Failed() {
		return
	}
	cmd := exec.Command("go", "vet", "./testdata/golden/...")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("go vet of the golden packages: %v\n%s", err, out)
	}
	cmd = exec.Command("go", "test", "-count=1", "./testdata/golden/...")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("go test of the golden packages: %v\n%s", err, out)
	}
}

// TestDeterministic checks that two runs produce identical bytes.
func TestDeterministic(t *testing.T) {
	a, b := generateDir(t, "testdata/golden/presence"), generateDir(t, "testdata/golden/presence")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Files) != len(b.Files) {
		t.Fatalf("%d files, then %d", len(a.Files), len(b.Files))
	}
	for i := range a.Files {
		if !bytes.Equal(a.Files[i].Content, b.Files[i].Content) {
			t.Errorf("%s differs between runs", a.Files[i].Path)
		}
		if strings.Contains(string(a.Files[i].Content), root) {
			t.Errorf("%s contains the path of the repository", a.Files[i].Path)
		}
	}
}

// TestGoTool checks the generate line that the documentation gives, //go:generate go tool
// ephemeralgen: the golden packages have it, go.mod declares the tool, and the tool finds the
// golden files fresh.
func TestGoTool(t *testing.T) {
	out, err := exec.Command("go", "generate", "-n", "./testdata/golden/...").CombinedOutput()
	if err != nil || strings.Count(string(out), "go tool ephemeralgen\n") != 5 {
		t.Fatalf("go generate -n: %v\n%s", err, out)
	}
	if out, err := exec.Command("go", "tool", "ephemeralgen", "-check", "./testdata/golden/...").CombinedOutput(); err != nil {
		t.Fatalf("go tool ephemeralgen -check: %v\n%s", err, out)
	}
}

// TestQuickstartLength keeps the file generated for the quickstart's store, a struct of three
// strings with two key fields, within 120 lines.
func TestQuickstartLength(t *testing.T) {
	src, err := os.ReadFile("testdata/golden/quickstart/presence_ephemeral.go")
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(src, []byte("\n")); n > 120 {
		t.Errorf("the quickstart's generated file has %d lines, want at most 120", n)
	}
}
