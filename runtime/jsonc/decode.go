package jsonc

import (
	"encoding/base64"
	"errors"
	"strconv"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is encoding/json's limit on the nesting of arrays and objects.
const maxDepth = 10000

// Decoder parses one JSON document from a byte slice. Methods that read a value skip leading
// white space; they record the first error (see [Decoder.Err]) and do nothing once an error is
// recorded, so that generated code checks once, in [Decoder.Finish]. The zero value, after
// [Decoder.Reset], is ready to use.
type Decoder struct {
	src   []byte
	pos   int
	err   error
	depth int
	first bool   // no member read yet in the innermost object or array
	buf   []byte // unescaped string
	fold  []byte // folded key

	// Strings of small documents share one copy of the document: str records where the last
	// string without escapes was, shared holds the copy once made.
	rawStart, rawEnd int
	shared           string

	// The ",string" option: the decoder reads the unescaped content of a string as the value.
	quoted   bool
	outer    []byte
	outerPos int
	qbuf     []byte
}

// Reset makes d read src from the start and clears its error.
func (d *Decoder) Reset(src []byte) {
	d.src, d.pos, d.err, d.depth, d.first = src, 0, nil, 0, false
	d.quoted, d.outer, d.shared = false, nil, ""
}

// Err returns the first error recorded.
func (d *Decoder) Err() error { return d.err }

// Fail records err unless an error was recorded already.
func (d *Decoder) Fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// FailEmbedded records the error of encoding/json for a member promoted through a nil
// embedded pointer to the unexported struct type typ, which it cannot allocate.
func (d *Decoder) FailEmbedded(typ string) {
	d.Fail(errors.New("json: cannot set embedded pointer to unexported struct: " + typ))
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
// Any other value is an error. Read the members with [Decoder.NextMember] and [Decoder.Field] or
// [Decoder.Key].
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
	if d.err != nil {
		return nil
	}
	if c := d.peek(); c != '"' {
		d.syntax(c, "looking for beginning of object key string")
		return nil
	}
	k := d.str()
	if c := d.peek(); c != ':' {
		d.syntax(c, "after object key")
		return nil
	}
	d.pos++
	return k
}

// Field reads an object key and the colon after it, and returns the name in f that it
// matches as encoding/json matches field names (exactly, else case-insensitively, first
// field first), or "" if none.
func (d *Decoder) Field(f *Fields) string {
	k := d.Key()
	if d.err != nil {
		return ""
	}
	return f.match(k, d)
}

// str reads a string whose opening quote is at d.pos and returns its unescaped content, which
// is valid until the next call. Invalid UTF-8 and invalid surrogate escapes become U+FFFD.
func (d *Decoder) str() []byte {
	src, p := d.src, d.pos+1
	start := p
	for p < len(src) {
		c := src[p]
		if charClass[c]&special == 0 {
			p++
			continue
		}
		if c == '"' {
			d.pos = p + 1
			d.rawStart, d.rawEnd = start, p
			return src[start:p]
		}
		if c >= utf8.RuneSelf {
			if r, size := utf8.DecodeRune(src[p:]); r != utf8.RuneError || size != 1 {
				p += size
				continue
			}
		}
		d.pos = p
		d.rawStart = -1
		return d.unescape(start)
	}
	d.pos = p
	d.syntaxEOF()
	return nil
}

// unescape continues str from d.pos on the slow path, writing into d.buf.
func (d *Decoder) unescape(start int) []byte {
	b := append(d.buf[:0], d.src[start:d.pos]...)
	defer func() { d.buf = b[:0] }()
	for d.pos < len(d.src) {
		c := d.src[d.pos]
		switch {
		case c == '"':
			d.pos++
			return b
		case c < ' ':
			d.syntax(c, "in string literal")
			return nil
		case c == '\\':
			d.pos++
			if d.pos >= len(d.src) {
				d.syntaxEOF()
				return nil
			}
			e := d.src[d.pos]
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r := d.hex4(d.pos + 1)
				if r < 0 {
					return nil
				}
				d.pos += 4
				if utf16.IsSurrogate(r) {
					if r1 := d.next4(d.pos + 1); r1 >= 0 {
						if dec := utf16.DecodeRune(r, r1); dec != unicode.ReplacementChar {
							d.pos += 6
							b = utf8.AppendRune(b, dec)
							break
						}
					}
					r = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, r)
			default:
				d.syntax(e, "in string escape code")
				return nil
			}
			d.pos++
		case c < utf8.RuneSelf:
			b = append(b, c)
			d.pos++
		default:
			r, size := utf8.DecodeRune(d.src[d.pos:])
			d.pos += size
			b = utf8.AppendRune(b, r)
		}
	}
	d.syntaxEOF()
	return nil
}

// hex4 decodes the 4 hex digits at p, recording a syntax error if they are not.
func (d *Decoder) hex4(p int) rune {
	var r rune
	for i := range 4 {
		if p+i >= len(d.src) {
			d.pos = len(d.src)
			d.syntaxEOF()
			return -1
		}
		c := d.src[p+i]
		v := unhex(c)
		if v < 0 {
			d.pos = p + i
			d.syntax(c, "in \\u hexadecimal character escape")
			return -1
		}
		r = r<<4 | v
	}
	return r
}

// next4 decodes a \uXXXX escape at p, or returns -1 if there is none (not an error).
func (d *Decoder) next4(p int) rune {
	if p+6 > len(d.src) || d.src[p] != '\\' || d.src[p+1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range d.src[p+2 : p+6] {
		v := unhex(c)
		if v < 0 {
			return -1
		}
		r = r<<4 | v
	}
	return r
}

func unhex(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// Skip reads and discards the next value, checking its syntax.
func (d *Decoder) Skip() {
	c, ok := d.start()
	if !ok {
		return
	}
	switch c {
	case '{':
		d.Object()
		for d.NextMember() {
			d.Key()
			d.Skip()
		}
	case '[':
		d.Array()
		for d.NextElem() {
			d.Skip()
		}
	case '"':
		d.skipString()
	case 't':
		d.literal("true")
	case 'f':
		d.literal("false")
	case 'n':
		d.literal("null")
	default:
		d.number()
	}
}

// skipString validates a string whose opening quote is at d.pos.
func (d *Decoder) skipString() {
	for p := d.pos + 1; p < len(d.src); p++ {
		switch c := d.src[p]; {
		case charClass[c]&special == 0 || c >= utf8.RuneSelf:
		case c == '"':
			d.pos = p + 1
			return
		case c == '\\' || c < ' ':
			d.str() // the slow path checks escapes
			return
		}
	}
	d.pos = len(d.src)
	d.syntaxEOF()
}

// Raw reads the next value, checking its syntax, and returns its bytes as they are in the
// input (for UnmarshalJSON methods).
func (d *Decoder) Raw() []byte {
	if _, ok := d.start(); !ok {
		return nil
	}
	start := d.pos
	d.Skip()
	if d.err != nil {
		return nil
	}
	return d.src[start:d.pos]
}

// number reads a number whose first byte is at d.pos and returns its text.
func (d *Decoder) number() []byte {
	s, p := d.src, d.pos
	start := p
	if p < len(s) && s[p] == '-' {
		p++
	}
	switch {
	case p >= len(s):
		d.pos = p
		d.syntaxEOF()
		return nil
	case s[p] == '0':
		p++
	case '1' <= s[p] && s[p] <= '9':
		for p++; p < len(s) && isDigit(s[p]); p++ {
		}
	default:
		d.pos = p
		if p == start {
			d.syntax(s[p], "looking for beginning of value")
		} else {
			d.syntax(s[p], "in numeric literal")
		}
		return nil
	}
	if p < len(s) && s[p] == '.' {
		p++
		if p >= len(s) || !isDigit(s[p]) {
			return d.badNumber(p)
		}
		for p++; p < len(s) && isDigit(s[p]); p++ {
		}
	}
	if p < len(s) && (s[p] == 'e' || s[p] == 'E') {
		p++
		if p < len(s) && (s[p] == '+' || s[p] == '-') {
			p++
		}
		if p >= len(s) || !isDigit(s[p]) {
			return d.badNumber(p)
		}
		for p++; p < len(s) && isDigit(s[p]); p++ {
		}
	}
	d.pos = p
	return s[start:p]
}

func (d *Decoder) badNumber(p int) []byte {
	d.pos = p
	if p >= len(d.src) {
		d.syntaxEOF()
	} else {
		d.syntax(d.src[p], "in numeric literal")
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scalar returns the text of the next number for a Go value of type typ, or ok false after
// a null (nothing to do) or an error.
func (d *Decoder) scalar(typ string) (num []byte, ok bool) {
	c, ok := d.start()
	if !ok {
		return nil, false
	}
	if c == 'n' {
		d.literal("null")
		return nil, false
	}
	if d.quoted {
		if c != '-' && !isDigit(c) {
			d.Fail(errQuoted(d.src))
			return nil, false
		}
		d.pos = len(d.src)
		return d.src, true
	}
	if c != '-' && !isDigit(c) {
		if !d.validStart(c) {
			d.syntax(c, "looking for beginning of value")
		} else {
			d.typeError(typ)
		}
		return nil, false
	}
	num = d.number()
	return num, d.err == nil
}

func (d *Decoder) numberError(num []byte, typ string) {
	d.Fail(&UnmarshalTypeError{Value: "number " + string(num), Type: typ, Offset: int64(d.pos - len(num))})
}

func (d *Decoder) int(bits int, typ string) (int64, bool) {
	num, ok := d.scalar(typ)
	if !ok {
		return 0, false
	}
	if n, ok := smallInt(num); ok && (bits == 64 || n == n<<(64-bits)>>(64-bits)) {
		return n, true
	}
	n, err := strconv.ParseInt(string(num), 10, bits)
	if err != nil {
		d.numberError(num, typ)
		return 0, false
	}
	return n, true
}

// smallInt parses num, a valid JSON number, if it is an integer of at most 18 digits.
func smallInt(num []byte) (int64, bool) {
	digits := num
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if len(digits) < len(num) {
		n = -n
	}
	return n, true
}

func (d *Decoder) uint(bits int, typ string) (uint64, bool) {
	num, ok := d.scalar(typ)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(string(num), 10, bits)
	if err != nil {
		d.numberError(num, typ)
		return 0, false
	}
	return n, true
}

func (d *Decoder) float(bits int, typ string) (float64, bool) {
	num, ok := d.scalar(typ)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(num), bits)
	if err != nil {
		d.numberError(num, typ)
		return 0, false
	}
	return f, true
}

// Int decodes a number into *p; null leaves *p unchanged.
func (d *Decoder) Int(p *int) {
	if n, ok := d.int(strconv.IntSize, "int"); ok {
		*p = int(n)
	}
}

// Int8 decodes a number into *p; null leaves *p unchanged.
func (d *Decoder) Int8(p *int8) {
	if n, ok := d.int(8, "int8"); ok {
		*p = int8(n)
	}
}

// Int16 decodes a number into *p; null leaves *p unchanged.
func (d *Decoder) Int16(p *int16) {
	if n, ok := d.int(16, "int16"); ok {
		*p = int16(n)
	}
}

// Int32 decodes a number into *p; null leaves *p unchanged.
func (d *Decoder) Int32(p *int32) {
	if n, ok := d.int(32, "int32"); ok {
		*p = int32(n)
	}
}

// Int64 decodes a number into *p; null leaves *p unchanged.
func (d *Decoder) Int64(p *int64) {
	if n, ok := d.int(64, "int64"); ok {
		*p = n
	}
}

// Uint decodes a number into *p; null leaves *p unchanged.
func (d *Decoder) Uint(p *uint) {
	if n, ok := d.uint(strconv.IntSize, "uint"); ok {
		*p = uint(n)
	}
}

// Uint8 decodes a number into *p; null leaves *p unchanged.
func (d *Decoder) Uint8(p *uint8) {
	if n, ok := d.uint(8, "uint8"); ok {
		*p = uint8(n)
	}
}

// Uint16 decodes a number into *p; null leaves *p unchanged.
func (d *Decoder) Uint16(p *uint16) {
	if n, ok := d.uint(16, "uint16"); ok {
		*p = uint16(n)
	}
}

// Uint32 decodes a number into *p; null leaves *p unchanged.
func (d *Decoder) Uint32(p *uint32) {
	if n, ok := d.uint(32, "uint32"); ok {
		*p = uint32(n)
	}
}

// Uint64 decodes a number into *p; null leaves *p unchanged.
func (d *Decoder) Uint64(p *uint64) {
	if n, ok := d.uint(64, "uint64"); ok {
		*p = n
	}
}

// Uintptr decodes a number into *p; null leaves *p unchanged.
func (d *Decoder) Uintptr(p *uintptr) {
	if n, ok := d.uint(strconv.IntSize, "uintptr"); ok {
		*p = uintptr(n)
	}
}

// Float32 decodes a number into *p; null leaves *p unchanged.
func (d *Decoder) Float32(p *float32) {
	if f, ok := d.float(32, "float32"); ok {
		*p = float32(f)
	}
}

// Float64 decodes a number into *p; null leaves *p unchanged.
func (d *Decoder) Float64(p *float64) {
	if f, ok := d.float(64, "float64"); ok {
		*p = f
	}
}

// Bool decodes true or false into *p; null leaves *p unchanged.
func (d *Decoder) Bool(p *bool) {
	c, ok := d.start()
	switch {
	case !ok:
	case c == 't':
		if d.literal("true") {
			*p = true
		}
	case c == 'f':
		if d.literal("false") {
			*p = false
		}
	case c == 'n':
		d.literal("null")
	case d.quoted:
		d.Fail(errQuoted(d.src))
	case !d.validStart(c):
		d.syntax(c, "looking for beginning of value")
	default:
		d.typeError("bool")
	}
}

// text returns the unescaped content of the next string for a Go value of type typ, or ok
// false after a null (nothing to do) or an error.
func (d *Decoder) text(typ string) ([]byte, bool) {
	c, ok := d.start()
	switch {
	case !ok:
		return nil, false
	case c == 'n':
		d.literal("null")
		return nil, false
	case d.quoted:
		s, ok := unquoteLenient(d.src)
		if !ok {
			d.Fail(errQuoted(d.src))
			return nil, false
		}
		d.pos = len(d.src)
		return s, true
	case c == '"':
		s := d.str()
		return s, d.err == nil
	case !d.validStart(c):
		d.syntax(c, "looking for beginning of value")
	default:
		d.typeError(typ)
	}
	return nil, false
}

// maxShared is the size up to which strings share one copy of the document.
const maxShared = 4096

// String decodes a string into *p; null leaves *p unchanged. Strings without escapes in a
// document of at most 4 KiB share one copy of the document, which saves an allocation per
// string but keeps the copy alive as long as any of them.
func (d *Decoder) String(p *string) {
	var s []byte
	ok := false
	if d.err == nil && !d.quoted && d.peek() == '"' {
		s, ok = d.str(), d.err == nil
	} else {
		s, ok = d.text("string")
	}
	switch {
	case !ok:
	case d.quoted || d.rawStart < 0 || len(d.src) > maxShared:
		*p = string(s)
	default:
		if d.shared == "" {
			d.shared = string(d.src)
		}
		*p = d.shared[d.rawStart:d.rawEnd]
	}
}

// Bytes decodes a base64 string (standard encoding; CR and LF ignored) or an array of numbers
// into *p; null sets *p to nil.
func (d *Decoder) Bytes(p *[]byte) {
	c, ok := d.start()
	if !ok {
		return
	}
	switch c {
	case 'n':
		if d.literal("null") {
			*p = nil
		}
	case '[':
		d.Array()
		s := (*p)[:0]
		for d.NextElem() {
			s = Grow(s)
			d.Uint8(&s[len(s)-1])
		}
		if len(s) == 0 {
			s = []byte{}
		}
		*p = s
	default:
		s, ok := d.text("[]uint8")
		if !ok {
			return
		}
		b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
		n, err := base64.StdEncoding.Decode(b, s)
		if err != nil {
			d.Fail(err)
			return
		}
		*p = b[:n]
	}
}

// Text returns the unescaped content of the next value, which must be a string, for an
// UnmarshalText method; ok is false after a null (leave the value unchanged) or an error.
func (d *Decoder) Text() (b []byte, ok bool) { return d.text("encoding.TextUnmarshaler") }

// Unmarshal calls u.UnmarshalJSON with the next value as it is in the input.
func Unmarshal[U interface{ UnmarshalJSON([]byte) error }](d *Decoder, u U) {
	if t, ok := any(u).(*time.Time); ok && d.err == nil && !d.quoted && d.peek() == '"' {
		start := d.pos // fast path: a string needs no Skip
		d.skipString()
		if d.err != nil {
			return
		}
		raw := d.src[start:d.pos]
		if v, ok := parseUTC(raw); ok {
			*t = v
		} else if err := t.UnmarshalJSON(raw); err != nil {
			d.Fail(err)
		}
		return
	}
	if raw := d.Raw(); d.err == nil {
		if err := u.UnmarshalJSON(raw); err != nil {
			d.Fail(err)
		}
	}
}

// UnmarshalText calls u.UnmarshalText with the content of the next value, which must be a
// string; null does nothing.
func UnmarshalText[U interface{ UnmarshalText([]byte) error }](d *Decoder, u U) {
	if b, ok := d.Text(); ok {
		if err := u.UnmarshalText(b); err != nil {
			d.Fail(err)
		}
	}
}

// UnmarshalTextKey reads an object key and its colon and calls u.UnmarshalText with it.
func UnmarshalTextKey[U interface{ UnmarshalText([]byte) error }](d *Decoder, u U) {
	if k := d.Key(); d.err == nil {
		if err := u.UnmarshalText(k); err != nil {
			d.Fail(err)
		}
	}
}

// IntKey reads an object key and its colon and parses the key as a decimal integer of the
// given bit size, as encoding/json parses integer map keys.
func (d *Decoder) IntKey(bits int) int64 {
	start := d.pos
	k := d.Key()
	if d.err != nil {
		return 0
	}
	n, err := strconv.ParseInt(string(k), 10, bits)
	if err != nil {
		d.Fail(&UnmarshalTypeError{Value: "number " + string(k), Type: "int" + strconv.Itoa(bits), Offset: int64(start)})
	}
	return n
}

// UintKey reads an object key and its colon and parses the key as a decimal unsigned integer
// of the given bit size.
func (d *Decoder) UintKey(bits int) uint64 {
	start := d.pos
	k := d.Key()
	if d.err != nil {
		return 0
	}
	n, err := strconv.ParseUint(string(k), 10, bits)
	if err != nil {
		d.Fail(&UnmarshalTypeError{Value: "number " + string(k), Type: "uint" + strconv.Itoa(bits), Offset: int64(start)})
	}
	return n
}

// Quoted begins a value of a field with the ",string" option: the next value must be a
// string (or null), whose content the following calls read as the value, up to
// [Decoder.Unquote]. It reports whether to read the value.
func (d *Decoder) Quoted() bool {
	c, ok := d.start()
	switch {
	case !ok:
		return false
	case c == 'n':
		if !d.literal("null") {
			return false
		}
		d.enterQuoted([]byte("null"))
		return true
	case c == '"':
		s := d.str()
		if d.err != nil {
			return false
		}
		d.enterQuoted(append(d.qbuf[:0], s...))
		return true
	case !d.validStart(c):
		d.syntax(c, "looking for beginning of value")
		return false
	}
	d.Fail(&SyntaxError{Msg: "invalid use of ,string struct tag, trying to unmarshal unquoted value", Offset: int64(d.pos)})
	return false
}

func (d *Decoder) enterQuoted(s []byte) {
	d.qbuf = s
	d.outer, d.outerPos = d.src, d.pos
	d.src, d.pos, d.quoted = s, 0, true
}

// Unquote ends what [Decoder.Quoted] began.
func (d *Decoder) Unquote() {
	if !d.quoted {
		return
	}
	if d.err == nil && d.pos != len(d.src) {
		d.Fail(errQuoted(d.src))
	}
	d.src, d.pos, d.quoted = d.outer, d.outerPos, false
	d.outer = nil
}

func errQuoted(item []byte) error {
	return &SyntaxError{Msg: "invalid use of ,string struct tag, trying to unmarshal " + strconv.Quote(string(item))}
}

// unquoteLenient unquotes s as encoding/json unquotes the content of a ",string" field: a
// quoted string, where \' is also accepted.
func unquoteLenient(s []byte) ([]byte, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return nil, false
	}
	s = s[1 : len(s)-1]
	b := make([]byte, 0, len(s))
	for r := 0; r < len(s); {
		switch c := s[r]; {
		case c == '\\':
			r++
			if r >= len(s) {
				return nil, false
			}
			switch s[r] {
			case '"', '\\', '/', '\'':
				b = append(b, s[r])
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[r-1:])
				if rr < 0 {
					return nil, false
				}
				r += 4
				if utf16.IsSurrogate(rr) {
					rr1 := getu4(s[r+1:])
					if dec := utf16.DecodeRune(rr, rr1); dec != unicode.ReplacementChar {
						r += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
			default:
				return nil, false
			}
			r++
		case c == '"', c < ' ':
			return nil, false
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	return b, true
}

// getu4 decodes \uXXXX from the beginning of s, returning the hex value, or -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		v := unhex(c)
		if v < 0 {
			return -1
		}
		r = r<<4 | v
	}
	return r
}

// Grow extends s by one element, reusing its capacity as encoding/json does (the element
// keeps what the backing array held), and returns it.
func Grow[S ~[]E, E any](s S) S {
	if len(s) < cap(s) {
		return s[:len(s)+1]
	}
	if cap(s) == 0 {
		return make(S, 1, 4)
	}
	var zero E
	return append(s, zero)
}
