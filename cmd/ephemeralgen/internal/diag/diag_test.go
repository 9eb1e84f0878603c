package diag

import (
	"go/token"
	"path/filepath"
	"testing"
)

func TestString(t *testing.T) {
	dir := filepath.FromSlash("/src/app")
	file := filepath.Join(dir, "presence.go")
	for _, tc := range []struct {
		d    Diagnostic
		want string
	}{
		{Errorf(token.Position{Filename: file, Line: 3, Column: 24}, "bad %s", "ttl"), "presence.go:3:24: bad ttl"},
		{Warningf(token.Position{Filename: file, Line: 3}, "ignored"), "presence.go:3: warning: ignored"},
		{Errorf(token.Position{Filename: filepath.FromSlash("/elsewhere/x.go")}, "m"), filepath.FromSlash("/elsewhere/x.go") + ": m"},
		{Errorf(token.Position{}, "no position"), "no position"},
	} {
		if got := tc.d.String(dir); got != tc.want {
			t.Errorf("String = %q, want %q", got, tc.want)
		}
	}
}

func TestSortAndHasErrors(t *testing.T) {
	w := Warningf(token.Position{Filename: "a.go", Line: 1}, "w")
	e := Errorf(token.Position{Filename: "a.go", Line: 2}, "e")
	ds := Sort([]Diagnostic{e, w, e})
	if len(ds) != 2 || ds[0] != w || ds[1] != e {
		t.Fatalf("Sort = %v", ds)
	}
	if HasErrors([]Diagnostic{w}) || !HasErrors(ds) {
		t.Fatal("HasErrors")
	}
}
