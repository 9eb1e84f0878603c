package jsonc

import (
	"bytes"
	"unicode"
	"unicode/utf8"
)

// Fields is the table of the JSON names of a struct's fields, in field order, that
// [Decoder.Fold] matches keys against.
type Fields struct {
	names  [][]byte
	folded []string
	byFold map[string][]byte // for large structs; first field wins
}

// mapThreshold is the number of fields from which Fields uses a map instead of a linear scan.
const mapThreshold = 12

// NewFields returns the table of names, which must be in field order.
func NewFields(names ...string) *Fields {
	f := &Fields{names: make([][]byte, len(names)), folded: make([]string, len(names))}
	for i, n := range names {
		f.names[i] = []byte(n)
		f.folded[i] = string(AppendFoldedName(nil, f.names[i]))
	}
	if len(names) >= mapThreshold {
		f.byFold = make(map[string][]byte, len(names))
		for i, n := range f.folded {
			if _, ok := f.byFold[n]; !ok {
				f.byFold[n] = f.names[i]
			}
		}
	}
	return f
}

// fold returns the first name that folds as k does, unless it is k itself (which the caller
// did not find among the names), or nil.
func (f *Fields) fold(k []byte, d *Decoder) []byte {
	d.folded = AppendFoldedName(d.folded[:0], k)
	var n []byte
	if f.byFold != nil {
		n = f.byFold[string(d.folded)]
	} else {
		for i, folded := range f.folded {
			if string(d.folded) == folded {
				n = f.names[i]
				break
			}
		}
	}
	if bytes.Equal(n, k) {
		return nil
	}
	return n
}

// AppendFoldedName appends the case-folded form of the field name in, such that two names
// fold to the same bytes exactly when encoding/json matches them case-insensitively: as its
// foldName does, an ASCII letter in upper case, any other rune as the smallest rune that
// unicode.SimpleFold makes it equal to (K for the Kelvin sign; the dotless ı and the dotted İ,
// equal to no other rune, as themselves).
func AppendFoldedName(out, in []byte) []byte {
	for i := 0; i < len(in); {
		if c := in[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(in[i:])
		out = utf8.AppendRune(out, foldRune(r))
		i += n
	}
	return out
}

// foldRune returns the smallest rune of the orbit of r under unicode.SimpleFold.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}
