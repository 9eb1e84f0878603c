// Package copy is imported by package shadow; its name is that of a predeclared function,
// which generated code calls.
package copy

// Span is a field type of package shadow.
type Span struct{ From, To int }
