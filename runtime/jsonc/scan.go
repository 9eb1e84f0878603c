package jsonc

import (
	"encoding/binary"
	"math/bits"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// str reads a string whose opening quote is at d.pos and returns its unescaped content, which
// is valid until the next call. Invalid UTF-8 and invalid surrogate escapes become U+FFFD.
func (d *Decoder) str() []byte {
	src := d.src
	start := d.pos + 1
	p := skipPlain(src, start)
	if p < len(src) && src[p] == '"' {
		d.pos = p + 1
		return src[start:p]
	}
	for p < len(src) {
		c := src[p]
		if charClass[c]&special == 0 {
			p++
			continue
		}
		if c == '"' {
			d.pos = p + 1
			return src[start:p]
		}
		if c >= utf8.RuneSelf {
			if r, size := utf8.DecodeRune(src[p:]); r != utf8.RuneError || size != 1 {
				p += size
				continue
			}
		}
		d.pos = p
		return d.unescape(start)
	}
	d.pos = p
	d.syntaxEOF()
	return nil
}

// skipPlain skips 8 bytes at a time from p while none of them is special in a string (a quote,
// a backslash, a control character or a non-ASCII byte), and returns the position of the first
// special byte, or where fewer than 8 bytes are left.
func skipPlain(src []byte, p int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; p+8 <= len(src); p += 8 {
		// The high bit of a byte is set in the first term if the byte is < 0x20, in the second
		// if it is '"', in the third if it is '\\', and in x if it is not ASCII. Where the
		// subtraction borrows, it may also be set in the bytes after such a byte, never before.
		x := binary.LittleEndian.Uint64(src[p:])
		q, b := x^'"'*ones, x^'\\'*ones
		if m := ((x-' '*ones)&^x | (q-ones)&^q | (b-ones)&^b | x) & highs; m != 0 {
			return p + bits.TrailingZeros64(m)/8
		}
	}
	return p
}

// unescape continues str from d.pos on the slow path, writing into d.buf.
func (d *Decoder) unescape(start int) []byte {
	b := append(d.buf[:0], d.src[start:d.pos]...)
	for d.pos < len(d.src) {
		if p := skipPlain(d.src, d.pos); p > d.pos {
			b = append(b, d.src[d.pos:p]...)
			d.pos = p
			continue
		}
		c := d.src[d.pos]
		switch {
		case c == '"':
			d.pos++
			d.buf = b
			return b
		case c < ' ':
			d.syntax(c, "in string literal")
			return nil
		case c == '\\':
			var ok bool
			if b, ok = d.escape(b); !ok {
				return nil
			}
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

// escape appends to b the character of the escape sequence whose backslash is at d.pos, and
// moves past it. A \u escape of half a surrogate pair that is not followed by the other half
// stands for U+FFFD, as in encoding/json.
func (d *Decoder) escape(b []byte) ([]byte, bool) {
	d.pos++
	if d.pos >= len(d.src) {
		d.syntaxEOF()
		return b, false
	}
	e := d.src[d.pos]
	if c, ok := simpleEscape(e); ok {
		d.pos++
		return append(b, c), true
	}
	if e != 'u' {
		d.syntax(e, "in string escape code")
		return b, false
	}
	r := d.hex4(d.pos + 1)
	if r < 0 {
		return b, false
	}
	d.pos += 5
	if utf16.IsSurrogate(r) {
		if dec := utf16.DecodeRune(r, d.next4(d.pos)); dec != unicode.ReplacementChar {
			d.pos += 6
			return utf8.AppendRune(b, dec), true
		}
		r = unicode.ReplacementChar
	}
	return utf8.AppendRune(b, r), true
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
	for p := skipPlain(d.src, d.pos+1); p < len(d.src); p++ {
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

// simpleEscape returns the byte that the escape sequence \e stands for, unless e is u.
func simpleEscape(e byte) (byte, bool) {
	switch e {
	case '"', '\\', '/':
		return e, true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	}
	return 0, false
}
