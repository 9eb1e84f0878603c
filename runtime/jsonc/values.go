package jsonc

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

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

// compactInt parses an integer of at most 18 digits at d.pos, without white space before
// it, and returns it with the position after it; ok is false for anything else (a fraction or
// an exponent, a longer or malformed number), which the general path then reads.
func (d *Decoder) compactInt() (n int64, end int, ok bool) {
	src, p := d.src, d.pos
	if p >= len(src) || d.err != nil || d.quoted {
		return 0, 0, false
	}
	negative := src[p] == '-'
	if negative {
		p++
	}
	start := p
	if p < len(src) && src[p] == '0' {
		p++
	} else {
		for ; p < len(src) && isDigit(src[p]) && p-start < 18; p++ {
			n = n*10 + int64(src[p]-'0')
		}
	}
	if p == start || p < len(src) && (isDigit(src[p]) || src[p] == '.' || src[p] == 'e' || src[p] == 'E') {
		return 0, 0, false
	}
	if negative {
		n = -n
	}
	return n, p, true
}

func (d *Decoder) int(bits int, typ string) (int64, bool) {
	if n, end, ok := d.compactInt(); ok && (bits == 64 || n == n<<(64-bits)>>(64-bits)) {
		d.pos = end
		return n, true
	}
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
	if n, end, ok := d.compactInt(); ok && d.src[d.pos] != '-' && (bits == 64 || n>>bits == 0) {
		d.pos = end
		return uint64(n), true
	}
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
	if bits == 64 && !d.quoted { // quoted numbers are not checked as JSON yet
		if f, ok := exactFloat(num); ok {
			return f, true
		}
	}
	f, err := strconv.ParseFloat(string(num), bits)
	if err != nil {
		d.numberError(num, typ)
		return 0, false
	}
	return f, true
}

// pow10 holds the powers of ten that a float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13,
	1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// exactFloat parses num, a valid JSON number, as strconv.ParseFloat(num, 64) does, if its
// digits form an integer m of at most 2^53 and its decimal exponent e is within ±22: then m
// and 10^|e| are exact float64 values and one multiplication or division rounds correctly.
func exactFloat(num []byte) (float64, bool) {
	i, m, digits, e := 0, uint64(0), 0, 0
	if num[0] == '-' {
		i++
	}
	for ; i < len(num) && isDigit(num[i]); i++ {
		m = m*10 + uint64(num[i]-'0')
		digits++
	}
	if i < len(num) && num[i] == '.' {
		for i++; i < len(num) && isDigit(num[i]); i++ {
			m = m*10 + uint64(num[i]-'0')
			digits++
			e--
		}
	}
	if i < len(num) { // an exponent: e or E, a sign maybe, digits
		i++
		negative := num[i] == '-'
		if num[i] == '+' || negative {
			i++
		}
		x := 0
		for ; i < len(num) && x < 1000; i++ { // more than 22 anyway
			x = x*10 + int(num[i]-'0')
		}
		if negative {
			x = -x
		}
		e += x
	}
	if digits > 19 || m > 1<<53 || e < -22 || e > 22 {
		return 0, false
	}
	f := float64(m)
	if e < 0 {
		f /= pow10[-e]
	} else {
		f *= pow10[e]
	}
	if num[0] == '-' {
		f = -f
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

// Strings share blocks of memory: the first block of a document holds up to a quarter of its
// size, within [minBlock, maxBlock]; each next block is twice as large, up to maxBlock. A
// string of more than maxBlock/4 bytes has its own memory.
const (
	minBlock = 64
	maxBlock = 4096
)

// String decodes a string into *p; null leaves *p unchanged. The strings of a document
// share blocks of memory of at most 4 KiB, which saves an allocation per string but keeps a
// block alive as long as any of its strings.
func (d *Decoder) String(p *string) {
	src, q := d.src, d.pos
	if q < len(src) && src[q] == '"' && d.err == nil && !d.quoted {
		// Fast path: a string without escapes, without white space before it.
		if end := skipPlain(src, q+1); end < len(src) && src[end] == '"' {
			d.pos = end + 1
			*p = d.share(src[q+1 : end])
			return
		}
	}
	var s []byte
	ok := false
	if d.err == nil && !d.quoted && d.peek() == '"' {
		s, ok = d.str(), d.err == nil
	} else {
		s, ok = d.text("string")
	}
	if ok {
		*p = d.share(s)
	}
}

// share returns s as a string in the current block of d, starting a new block if s does not
// fit.
func (d *Decoder) share(s []byte) string {
	if len(s) > maxBlock/4 {
		return string(s)
	}
	if b := &d.block; b.Cap()-b.Len() < len(s) {
		size := min(max(2*b.Cap(), len(d.src)/4, minBlock), maxBlock)
		*b = strings.Builder{} // the strings in the full block keep it
		b.Grow(size)
	}
	d.block.Write(s)
	all := d.block.String()
	return all[len(all)-len(s):]
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
		d.time(t)
		return
	}
	if raw := d.Raw(); d.err == nil {
		if err := u.UnmarshalJSON(raw); err != nil {
			d.Fail(err)
		}
	}
}

// time decodes the string at d.pos into *t, parsing the common UTC form directly and any
// other string with time.Time.UnmarshalJSON.
func (d *Decoder) time(t *time.Time) {
	if v, n := parseUTC(d.src[d.pos:]); n > 0 {
		*t = v
		d.pos += n
		return
	}
	start := d.pos // a string needs no Skip
	d.skipString()
	if d.err != nil {
		return
	}
	if err := t.UnmarshalJSON(d.src[start:d.pos]); err != nil {
		d.Fail(err)
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

// UnmarshalJSONKey reads an object key and its colon and calls u.UnmarshalJSON with the key as
// it is written in the document, quotes and escapes included, as encoding/json reads the key
// of a map whose key type's pointer has UnmarshalJSON and UnmarshalText methods.
func UnmarshalJSONKey[U interface{ UnmarshalJSON([]byte) error }](d *Decoder, u U) {
	if _, quoted := d.key(); d.err == nil {
		if err := u.UnmarshalJSON(quoted); err != nil {
			d.Fail(err)
		}
	}
}

// IntKey reads an object key and its colon and parses the key as a decimal integer of the
// given bit size (0 for int), as encoding/json parses integer map keys.
func (d *Decoder) IntKey(bits int) int64 {
	start := d.pos
	k := d.Key()
	if d.err != nil {
		return 0
	}
	n, err := strconv.ParseInt(string(k), 10, bits)
	if err != nil {
		d.Fail(&UnmarshalTypeError{Value: "number " + string(k), Type: intType("int", bits), Offset: int64(start)})
	}
	return n
}

// UintKey reads an object key and its colon and parses the key as a decimal unsigned integer
// of the given bit size (0 for uint).
func (d *Decoder) UintKey(bits int) uint64 {
	start := d.pos
	k := d.Key()
	if d.err != nil {
		return 0
	}
	n, err := strconv.ParseUint(string(k), 10, bits)
	if err != nil {
		d.Fail(&UnmarshalTypeError{Value: "number " + string(k), Type: intType("uint", bits), Offset: int64(start)})
	}
	return n
}

// intType names the integer type of the given bit size: int for 0, else int8 to int64 (or
// their unsigned forms, with kind "uint").
func intType(kind string, bits int) string {
	if bits == 0 {
		return kind
	}
	return kind + strconv.Itoa(bits)
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
