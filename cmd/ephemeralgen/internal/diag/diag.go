// Package diag is ephemeralgen's one diagnostic type: a problem found in the code it generates
// for, at a position, which is an error (nothing is generated) or a warning (it is printed, and
// generation goes on).
package diag

import (
	"cmp"
	"fmt"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
)

// Severity tells whether a diagnostic stops generation.
type Severity uint8

// The severities. The zero Severity is Error.
const (
	Error   Severity = iota // nothing is generated
	Warning                 // printed; generation goes on
)

// Diagnostic is one problem, reported like a compiler's.
type Diagnostic struct {
	Pos      token.Position // Filename is absolute; Line and Column may be 0
	Msg      string
	Severity Severity
}

// Errorf returns the error at pos with the formatted message.
func Errorf(pos token.Position, format string, args ...any) Diagnostic {
	return Diagnostic{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// Warningf returns the warning at pos with the formatted message.
func Warningf(pos token.Position, format string, args ...any) Diagnostic {
	return Diagnostic{Pos: pos, Msg: fmt.Sprintf(format, args...), Severity: Warning}
}

// String formats d as file:line:col: msg, or file:line:col: warning: msg, with the file name
// relative to dir when it is inside it.
func (d Diagnostic) String(dir string) string {
	var b strings.Builder
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
	if d.Severity == Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(d.Msg)
	return b.String()
}

// Sort sorts ds by position, then message, and drops repeats.
func Sort(ds []Diagnostic) []Diagnostic {
	slices.SortFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.Pos.Filename, b.Pos.Filename), cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Column, b.Pos.Column), cmp.Compare(a.Msg, b.Msg), cmp.Compare(a.Severity, b.Severity))
	})
	return slices.Compact(ds)
}

// HasErrors reports whether any of ds is an error.
func HasErrors(ds []Diagnostic) bool {
	return slices.ContainsFunc(ds, func(d Diagnostic) bool { return d.Severity == Error })
}
