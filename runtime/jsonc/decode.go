package jsonc

import (
	"strconv"
	"strings"
)

// maxDepth is encoding/json's limit on the nesting of arrays and objects.
const maxDepth = 10000

// Decoder parses one JSON document from a byte slice. Methods that read a value skip leading
// white space; they record the first error (see [Decoder.Err]) and do nothing once an error is
// recorded, so that generated code checks once, in [Decoder.Finish]. The zero value, after
// [Decoder.Reset], is ready to use; a Decoder must not be copied after first use.
type Decoder struct {
	src    []byte
	pos    int
	err    error
	depth  int
	first  bool   // no member read yet in the innermost object or array
	buf    []byte // unescaped string
	folded []byte // folded key

	block strings.Builder // memory shared by decoded strings (see String)

	// The ",string" option: the decoder reads the unescaped content of a string as the value.
	quoted   bool
	outer    []byte
	outerPos int
	qbuf     []byte
}

// Reset makes d read src from the start and clears its error.
func (d *Decoder) Reset(src []byte) {
	d.src, d.pos, d.err, d.depth, d.first = src, 0, nil, 0, false
	d.quoted, d.outer, d.block = false, nil, strings.Builder{}
}

// Err returns the first error recorded.
func (d *Decoder) Err() error { return d.err }

// Fail records err unless an error was recorded already.
func (d *Decoder) Fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// Finish checks that only white space follows the value read and returns the first error.
func (d *Decoder) Finish() error {
	if d.err != nil {
		return d.err
	}
	if c := d.peek(); d.pos < len(d.src) {
		d.syntax(c, "after top-level value")
	}
	return d.err
}

func (d *Decoder) syntaxEOF() {
	d.Fail(&SyntaxError{Msg: "unexpected end of JSON input", Offset: int64(len(d.src))})
}

// syntax records an invalid character c at d.pos, or the end of the input.
func (d *Decoder) syntax(c byte, context string) {
	if d.pos >= len(d.src) {
		d.syntaxEOF()
		return
	}
	d.Fail(&SyntaxError{Msg: "invalid character " + quoteChar(c) + " " + context, Offset: int64(d.pos)})
}

func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

// typeError records that the value starting at d.pos cannot be stored in a Go value of type
// typ; the value is not consumed (decoding stops at the first error).
func (d *Decoder) typeError(typ string) {
	what := "number"
	switch d.src[d.pos] {
	case '{':
		what = "object"
	case '[':
		what = "array"
	case '"':
		what = "string"
	case 't', 'f':
		what = "bool"
	case 'n':
		what = "null"
	}
	d.Fail(&UnmarshalTypeError{Value: what, Type: typ, Offset: int64(d.pos)})
}

// peek skips white space and returns the next byte, or 0 at the end of the input.
func (d *Decoder) peek() byte {
	src, p := d.src, d.pos
	for ; p < len(src); p++ {
		if c := src[p]; c > ' ' || (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			d.pos = p
			return c
		}
	}
	d.pos = p
	return 0
}

// start returns the first byte of the next value, or false (recording an error at the end of
// the input or after an earlier error).
func (d *Decoder) start() (byte, bool) {
	if d.err != nil {
		return 0, false
	}
	if d.quoted {
		if len(d.src) == 0 {
			d.Fail(errQuoted(d.src))
			return 0, false
		}
		return d.src[0], true
	}
	c := d.peek()
	if d.pos >= len(d.src) {
		d.syntaxEOF()
		return 0, false
	}
	return c, true
}

// literal consumes the literal lit (true, false or null) whose first byte is at d.pos.
func (d *Decoder) literal(lit string) bool {
	if d.quoted {
		if string(d.src) != lit {
			d.Fail(errQuoted(d.src))
			return false
		}
		d.pos = len(d.src)
		return true
	}
	for i := 1; i < len(lit); i++ {
		p := d.pos + i
		if p >= len(d.src) {
			d.pos = p
			d.syntaxEOF()
			return false
		}
		if d.src[p] != lit[i] {
			d.pos = p
			d.syntax(d.src[p], "in literal "+lit+" (expecting "+quoteChar(lit[i])+")")
			return false
		}
	}
	d.pos += len(lit)
	return true
}

// Null consumes a null and reports true if the next value is null.
func (d *Decoder) Null() bool {
	c, ok := d.start()
	if !ok || c != 'n' {
		return false
	}
	return d.literal("null")
}

// Object consumes the { of an object and reports true, or consumes a null and reports false.
// Any other value is an error. Read the members with [Decoder.Member] (or [Decoder.NextMember]
// and [Decoder.Key]) and [Decoder.Fold].
func (d *Decoder) Object() bool { return d.open('{', "object") }

// Array consumes the [ of an array and reports true, or consumes a null and reports false.
// Any other value is an error. Read the elements with [Decoder.NextElem].
func (d *Decoder) Array() bool { return d.open('[', "array") }

func (d *Decoder) open(c byte, what string) bool {
	got, ok := d.start()
	switch {
	case !ok:
		return false
	case got == 'n':
		d.literal("null")
		return false
	case d.quoted:
		d.Fail(errQuoted(d.src))
		return false
	case got != c:
		if !d.validStart(got) {
			d.syntax(got, "looking for beginning of value")
		} else {
			d.typeError(what)
		}
		return false
	}
	d.pos++
	d.depth++
	if d.depth > maxDepth {
		d.Fail(&SyntaxError{Msg: "exceeded max depth", Offset: int64(d.pos)})
		return false
	}
	d.first = true
	return true
}

func (d *Decoder) validStart(c byte) bool {
	switch c {
	case '{', '[', '"', 't', 'f', 'n', '-':
		return true
	}
	return '0' <= c && c <= '9'
}

// NextMember reports whether the object opened last has another member, consuming the comma
// before it; at the end it consumes the closing } and reports false.
func (d *Decoder) NextMember() bool { return d.next('}', "after object key:value pair") }

// Member reads the next member's key and the colon after it in the object opened last, with
// the comma before it; it returns the key, or nil at the end of the object (consuming the
// closing }) or after an error. The key is valid until the next call that reads a string.
// Member does what [Decoder.NextMember] and [Decoder.Key] do, faster for compact keys without
// escapes.
func (d *Decoder) Member() []byte {
	src, p := d.src, d.pos
	if !d.first && p < len(src) && src[p] == ',' {
		p++
	}
	// A key follows the comma, or the { of the first member, directly: read it here.
	if (p > d.pos || d.first) && p < len(src) && src[p] == '"' && d.err == nil {
		start := p + 1
		end := skipPlain(src, start)
		if end+1 < len(src) && src[end] == '"' && src[end+1] == ':' {
			d.pos, d.first = end+2, false
			return src[start:end]
		}
	}
	if !d.NextMember() {
		return nil
	}
	return d.Key()
}

// NextElem reports whether the array opened last has another element, consuming the comma
// before it; at the end it consumes the closing ] and reports false.
func (d *Decoder) NextElem() bool { return d.next(']', "after array element") }

func (d *Decoder) next(end byte, context string) bool {
	if d.err != nil {
		return false
	}
	c := d.peek()
	if c == end {
		d.pos++
		d.depth--
		d.first = false
		return false
	}
	if d.first {
		d.first = false
		return true
	}
	if c != ',' {
		d.syntax(c, context)
		return false
	}
	d.pos++
	return true
}

// Key reads an object key and the colon after it. The result is valid until the next call
// that reads a string.
func (d *Decoder) Key() []byte {
	k, _ := d.key()
	return k
}

// key is Key, and returns the key as written in the document too, quotes and escapes
// included; both nil after an error.
func (d *Decoder) key() (k, quoted []byte) {
	if d.err != nil {
		return nil, nil
	}
	if c := d.peek(); c != '"' {
		d.syntax(c, "looking for beginning of object key string")
		return nil, nil
	}
	start := d.pos
	k = d.str()
	quoted = d.src[start:d.pos]
	if c := d.peek(); c != ':' {
		d.syntax(c, "after object key")
		return nil, nil
	}
	d.pos++
	return k, quoted
}

// Fold returns the name in f that the key k matches case-insensitively, as encoding/json
// matches a key that is not exactly a field name (first field first), or nil if there is
// none. Generated code switches on the key first and calls Fold only when no name is equal.
func (d *Decoder) Fold(f *Fields, k []byte) []byte {
	if d.err != nil {
		return nil
	}
	return f.fold(k, d)
}
