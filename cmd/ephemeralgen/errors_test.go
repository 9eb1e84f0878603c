package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestErrors generates each package under testdata/errors and compares the diagnostics,
// formatted relative to the package directory, with its want.txt (go test -update rewrites it).
func TestErrors(t *testing.T) {
	dirs, err := filepath.Glob("testdata/errors/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no error cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			abs, err := filepath.Abs(dir)
			if err != nil {
				t.Fatal(err)
			}
			res := generateDir(t, dir)
			if len(res.Files) > 0 || len(res.Orphans) > 0 {
				t.Errorf("with problems, got files %d and orphans %q; want none", len(res.Files), res.Orphans)
			}
			var got strings.Builder
			for _, d := range res.Diags {
				got.WriteString(d.String(abs) + "\n")
			}
			wantFile := filepath.Join(dir, "want.txt")
			if *update {
				if err := os.WriteFile(wantFile, []byte(got.String()), 0o666); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("diagnostics:\n%s", unifiedDiff("want.txt", "got", string(want), got.String()))
			}
		})
	}
}
