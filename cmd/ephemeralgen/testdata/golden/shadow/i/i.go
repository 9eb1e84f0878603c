// Package i is imported by package shadow under the name of a local variable of generated
// code, the index of an array.
package i

// Point is a field type of package shadow.
type Point struct{ X, Y int }
