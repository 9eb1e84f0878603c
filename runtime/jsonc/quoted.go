package jsonc

import (
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

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
			if e, ok := simpleEscape(s[r]); ok || s[r] == '\'' {
				if !ok {
					e = '\'' // encoding/json's unquote accepts \' here
				}
				b = append(b, e)
				r++
				continue
			}
			if s[r] != 'u' {
				return nil, false
			}
			rr := getu4(s[r-1:])
			if rr < 0 {
				return nil, false
			}
			r += 5
			if utf16.IsSurrogate(rr) {
				if dec := utf16.DecodeRune(rr, getu4(s[r:])); dec != unicode.ReplacementChar {
					r += 6
					b = utf8.AppendRune(b, dec)
					continue
				}
				rr = unicode.ReplacementChar
			}
			b = utf8.AppendRune(b, rr)
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
