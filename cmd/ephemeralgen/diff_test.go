package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestUnifiedDiff(t *testing.T) {
	var a, b strings.Builder
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&a, "line %d\n", i)
		switch i {
		case 2:
			b.WriteString("line 2 changed\n")
		case 15:
		default:
			fmt.Fprintf(&b, "line %d\n", i)
		}
	}
	b.WriteString("line 21")
	got := unifiedDiff("a", "b", a.String(), b.String())
	want := `--- a
+++ b
@@ -1,5 +1,5 @@
 line 1
-line 2
+line 2 changed
 line 3
 line 4
 line 5
@@ -12,9 +12,9 @@
 line 12
 line 13
 line 14
-line 15
 line 16
 line 17
 line 18
 line 19
 line 20
+line 21
\ No newline at end of file
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if d := unifiedDiff("a", "b", "x\n", "x\n"); d != "" {
		t.Errorf("diff of equal texts = %q", d)
	}
	if d := unifiedDiff("a", "b", "", "x\n"); d != "--- a\n+++ b\n@@ -0,0 +1,1 @@\n+x\n" {
		t.Errorf("diff from empty = %q", d)
	}
}
