package jsonc

import (
	"encoding/base64"
	"errors"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Encoder appends JSON to a byte slice. The zero value is ready to use; methods record the
// first error (see [Encoder.Err]) and keep writing, so that callers check once at the end.
type Encoder struct {
	buf   []byte
	start int
	err   error
	depth int
	seen  map[any]struct{}
}

// Reset makes e append to dst and clears its error.
func (e *Encoder) Reset(dst []byte) {
	*e = Encoder{buf: dst, start: len(dst)}
}

// Finish returns the extended buffer, or the buffer as it was given to [Encoder.Reset] and the
// first error.
func (e *Encoder) Finish() ([]byte, error) {
	if e.err != nil {
		return e.buf[:e.start], e.err
	}
	return e.buf, nil
}

// Err returns the first error recorded.
func (e *Encoder) Err() error { return e.err }

// Fail records err unless an error was recorded already.
func (e *Encoder) Fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// Raw appends s verbatim; generated code writes punctuation and escaped keys with it.
func (e *Encoder) Raw(s string) { e.buf = append(e.buf, s...) }

// Byte appends c verbatim.
func (e *Encoder) Byte(c byte) { e.buf = append(e.buf, c) }

// Key appends the escaped object key k (with its quotes and colon), preceded by a comma
// unless it is the first member of the object.
func (e *Encoder) Key(k string) {
	if n := len(e.buf); n > 0 && e.buf[n-1] != '{' {
		e.buf = append(e.buf, ',')
	}
	e.buf = append(e.buf, k...)
}

// Null appends null.
func (e *Encoder) Null() { e.buf = append(e.buf, "null"...) }

// Bool appends true or false.
func (e *Encoder) Bool(b bool) { e.buf = strconv.AppendBool(e.buf, b) }

// Int appends n in decimal.
func (e *Encoder) Int(n int64) { e.buf = strconv.AppendInt(e.buf, n, 10) }

// Uint appends n in decimal.
func (e *Encoder) Uint(n uint64) { e.buf = strconv.AppendUint(e.buf, n, 10) }

// IntKey appends n as a quoted object key, as encoding/json writes integer map keys.
func (e *Encoder) IntKey(n int64) {
	e.buf = append(e.buf, '"')
	e.buf = strconv.AppendInt(e.buf, n, 10)
	e.buf = append(e.buf, '"')
}

// UintKey appends n as a quoted object key.
func (e *Encoder) UintKey(n uint64) {
	e.buf = append(e.buf, '"')
	e.buf = strconv.AppendUint(e.buf, n, 10)
	e.buf = append(e.buf, '"')
}

// Float64 appends f as encoding/json formats a float64; NaN and infinities are an error.
func (e *Encoder) Float64(f float64) {
	var err error
	if e.buf, err = AppendFloat(e.buf, f, 64); err != nil {
		e.Fail(err)
	}
}

// Float32 appends f as encoding/json formats a float32; NaN and infinities are an error.
func (e *Encoder) Float32(f float32) {
	var err error
	if e.buf, err = AppendFloat(e.buf, float64(f), 32); err != nil {
		e.Fail(err)
	}
}

// String appends s as a JSON string, escaped as encoding/json escapes it.
func (e *Encoder) String(s string) { e.buf = AppendString(e.buf, s) }

// QuotedString appends the JSON string of the JSON string of s, as encoding/json writes a
// string field with the ",string" option.
func (e *Encoder) QuotedString(s string) {
	var tmp [64]byte
	e.buf = appendString(e.buf, AppendString(tmp[:0], s), false)
}

// Bytes appends b in standard base64 as a JSON string, or null when b is nil.
func (e *Encoder) Bytes(b []byte) {
	if b == nil {
		e.Null()
		return
	}
	e.buf = append(e.buf, '"')
	e.buf = base64.StdEncoding.AppendEncode(e.buf, b)
	e.buf = append(e.buf, '"')
}

// Time appends t exactly as encoding/json writes it (through time.Time.MarshalJSON) but
// without allocating: RFC 3339 with nanoseconds, an error for years outside [0,9999] and for
// zone offsets of 24 hours or more.
func (e *Encoder) Time(t time.Time) {
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	_, offset := t.Zone()
	zone := offset / 60 // minutes
	switch {
	case year < 0 || year > 9999:
		e.timeError("year outside of range [0,9999]")
	case zone <= -24*60 || zone >= 24*60:
		e.timeError("timezone hour outside of range [0,23]")
	}
	b := append(e.buf, '"')
	b = append2(append2(b, year/100), year%100)
	b = append2(append(b, '-'), int(month))
	b = append2(append(b, '-'), day)
	b = append2(append(b, 'T'), hour)
	b = append2(append(b, ':'), minute)
	b = append2(append(b, ':'), sec)
	if ns := t.Nanosecond(); ns != 0 {
		var digits [9]byte
		for i := 8; i >= 0; i-- {
			digits[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 9
		for digits[n-1] == '0' {
			n--
		}
		b = append(append(b, '.'), digits[:n]...)
	}
	if offset == 0 {
		b = append(b, 'Z')
	} else {
		sign := byte('+')
		if zone < 0 {
			sign, zone = '-', -zone
		}
		b = append2(append(append2(append(b, sign), zone/60), ':'), zone%60)
	}
	e.buf = append(b, '"')
}

// append2 appends n in [0,99] as two digits.
func append2(b []byte, n int) []byte {
	if n < 0 || n > 99 {
		n = 0 // only for values that are an error anyway
	}
	return append(b, byte('0'+n/10), byte('0'+n%10))
}

func (e *Encoder) timeError(msg string) {
	e.Fail(&MarshalerError{Type: "*time.Time", Err: errors.New("Time.MarshalJSON: " + msg), Func: "MarshalJSON"})
}

// JSON appends the output of a MarshalJSON method of type typ, validated and compacted, with
// HTML escaping, as encoding/json does; err is the method's error.
func (e *Encoder) JSON(typ string, b []byte, err error) {
	if err == nil {
		e.buf, err = appendCompact(e.buf, b)
	}
	if err != nil {
		e.Fail(&MarshalerError{Type: typ, Err: err, Func: "MarshalJSON"})
	}
}

// Text appends the output of a MarshalText method of type typ as a JSON string; err is the
// method's error.
func (e *Encoder) Text(typ string, b []byte, err error) {
	if err != nil {
		e.Fail(&MarshalerError{Type: typ, Err: err, Func: "MarshalText"})
		return
	}
	e.buf = appendString(e.buf, b, true)
}

// Marshal appends the result of m.MarshalJSON(); typ names m's type in errors.
func Marshal[M interface{ MarshalJSON() ([]byte, error) }](e *Encoder, typ string, m M) {
	b, err := m.MarshalJSON()
	e.JSON(typ, b, err)
}

// MarshalText appends the result of m.MarshalText() as a JSON string; typ names m's type in
// errors.
func MarshalText[M interface{ MarshalText() ([]byte, error) }](e *Encoder, typ string, m M) {
	b, err := m.MarshalText()
	e.Text(typ, b, err)
}

// maxEncodeDepth bounds the nesting of recursive values that Enter cannot identify (a slice
// that holds itself through a named slice type).
const maxEncodeDepth = 10000

// startDetectingCyclesAfter is encoding/json's threshold for tracking pointers.
const startDetectingCyclesAfter = 1000

// Enter is called by generated code when it encodes a value of a recursive type, with what
// identifies the value: the pointer to a struct, the [MapPointer] of a map, or nil when there
// is none. It reports false, and records an error, when the value is part of a cycle, as
// encoding/json does, or when it has no identity and is nested more than 10,000 levels deep in
// recursive values. Every Enter that returns true is paired with a [Encoder.Leave] of the same
// p.
func (e *Encoder) Enter(p any, typ string) bool {
	e.depth++
	if e.depth <= startDetectingCyclesAfter {
		return true
	}
	if p == nil {
		if e.depth > maxEncodeDepth {
			e.depth--
			e.Fail(&UnsupportedValueError{Str: "exceeded max depth via " + typ})
			return false
		}
		return true
	}
	if _, ok := e.seen[p]; ok {
		e.depth--
		e.Fail(&UnsupportedValueError{Str: "encountered a cycle via " + typ})
		return false
	}
	if e.seen == nil {
		e.seen = make(map[any]struct{})
	}
	e.seen[p] = struct{}{}
	return true
}

// MapPointer returns the pointer that identifies the map m for [Encoder.Enter], which
// reflect.Value.UnsafePointer returns and by which encoding/json finds a map that holds itself:
// the map's values, which encoders copy, have no address that identifies them.
func MapPointer[M ~map[K]V, K comparable, V any](m M) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&m)) // a map is a pointer to its runtime structure
}

// Leave ends the value begun by a successful [Encoder.Enter].
func (e *Encoder) Leave(p any) {
	if e.depth > startDetectingCyclesAfter && p != nil {
		delete(e.seen, p)
	}
	e.depth--
}

// AppendFloat appends f formatted as encoding/json formats floats of the given bit size (32
// or 64): shortest representation, 'f' format unless the magnitude is below 1e-6 or at least
// 1e21, exponents without a leading zero. NaN and infinities are an error.
func AppendFloat(dst []byte, f float64, bits int) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, &UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, bits)}
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// Clean up e-09 to e-9.
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// AppendString appends s as a JSON string escaped as encoding/json escapes it: control
// characters, quote and backslash, the HTML characters <, > and &, U+2028 and U+2029; invalid
// UTF-8 becomes \ufffd.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s, true) }

const hex = "0123456789abcdef"

func appendString[Bytes []byte | string](dst []byte, src Bytes, escapeHTML bool) []byte {
	mask := byte(plain)
	if escapeHTML {
		mask = htmlPlain
	}
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(src); {
		b := src[i]
		if charClass[b]&mask != 0 {
			i++
			continue
		}
		if b < utf8.RuneSelf {
			dst = append(dst, src[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		n := min(len(src)-i, utf8.UTFMax)
		c, size := utf8.DecodeRuneInString(string(src[i : i+n]))
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, src[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, src[start:]...)
	dst = append(dst, '"')
	return dst
}

// Classes of bytes in JSON strings.
const (
	plain     = 1 << iota // ASCII that needs no escaping
	htmlPlain             // ASCII that needs no escaping, even with HTML escaping
	special               // stops the decoder's fast path: quote, backslash, control, non-ASCII
)

var charClass = func() (t [256]byte) {
	for b := range 256 {
		switch {
		case b >= utf8.RuneSelf || b < ' ' || b == '"' || b == '\\':
			t[b] = special
		case b == '<' || b == '>' || b == '&':
			t[b] = plain
		default:
			t[b] = plain | htmlPlain
		}
	}
	return t
}()

// appendCompact appends the JSON value src without insignificant white space, with <, >, &,
// U+2028 and U+2029 escaped, after checking that src is exactly one valid JSON value.
func appendCompact(dst, src []byte) ([]byte, error) {
	var d Decoder
	d.Reset(src)
	d.Skip()
	if err := d.Finish(); err != nil {
		return dst, err
	}
	inString := false
	start := 0
	flush := func(i int) { dst = append(dst, src[start:i]...) }
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '<' || c == '>' || c == '&':
			flush(i)
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			start = i + 1
		case c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8:
			flush(i)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[src[i+2]&0xF])
			start = i + 3
			i += 2
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			flush(i)
			start = i + 1
		}
	}
	flush(len(src))
	return dst, nil
}
