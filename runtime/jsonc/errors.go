package jsonc

import "strconv"

// SyntaxError reports malformed JSON input.
type SyntaxError struct {
	Msg    string // description of the error
	Offset int64  // the input was read without error up to Offset bytes
}

// Error returns the message, as encoding/json words it.
func (e *SyntaxError) Error() string { return "json: " + e.Msg }

// UnmarshalTypeError reports a JSON value that cannot be stored in the Go value it is decoded
// into.
type UnmarshalTypeError struct {
	Value  string // description of the JSON value: "bool", "array", "number -5"
	Type   string // the Go type it could not be assigned to
	Offset int64  // where the value starts in the input
}

// Error says which JSON value did not fit which Go type, as encoding/json words it.
func (e *UnmarshalTypeError) Error() string {
	return "json: cannot unmarshal " + e.Value + " into Go value of type " + e.Type +
		" (offset " + strconv.FormatInt(e.Offset, 10) + ")"
}

// UnsupportedValueError reports a value that JSON cannot represent, such as NaN or a cycle.
type UnsupportedValueError struct {
	Str string
}

// Error names the value, as encoding/json words it.
func (e *UnsupportedValueError) Error() string { return "json: unsupported value: " + e.Str }

// MarshalerError reports an error from a MarshalJSON or MarshalText method, or invalid JSON
// returned by MarshalJSON.
type MarshalerError struct {
	Type string // the Go type whose method failed, as reflect spells it: "*pkg.T"
	Err  error
	Func string // "MarshalJSON" or "MarshalText"
}

// Error names the method and type that failed, and its error, as encoding/json words it.
func (e *MarshalerError) Error() string {
	return "json: error calling " + e.Func + " for type " + e.Type + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *MarshalerError) Unwrap() error { return e.Err }
