package jsonc

import (
	"unicode"
	"unicode/utf8"
)

// Fields is the table of the JSON names of a struct's fields, in field order, that
// [Decoder.Field] matches keys against.
type Fields struct {
	names  []string
	folded []string
	exact  map[string]string // for large structs
	fold   map[string]string // first field wins
}

// mapThreshold is the number of fields from which Fields uses maps instead of a linear scan.
const mapThreshold = 12

// NewFields returns the table of names, which must be in field order.
func NewFields(names ...string) *Fields {
	f := &Fields{names: names, folded: make([]string, len(names))}
	for i, n := range names {
		f.folded[i] = string(AppendFoldedName(nil, []byte(n)))
	}
	if len(names) >= mapThreshold {
		f.exact = make(map[string]string, len(names))
		f.fold = make(map[string]string, len(names))
		for i, n := range names {
			f.exact[n] = n
			if _, ok := f.fold[f.folded[i]]; !ok {
				f.fold[f.folded[i]] = n
			}
		}
	}
	return f
}

func (f *Fields) match(k []byte, d *Decoder) string {
	if f.exact != nil {
		if n, ok := f.exact[string(k)]; ok {
			return n
		}
		d.fold = AppendFoldedName(d.fold[:0], k)
		return f.fold[string(d.fold)]
	}
	for _, n := range f.names {
		if len(k) == len(n) && (len(k) == 0 || k[0] == n[0]) && string(k) == n {
			return n
		}
	}
	d.fold = AppendFoldedName(d.fold[:0], k)
	for i, n := range f.folded {
		if string(d.fold) == n {
			return f.names[i]
		}
	}
	return ""
}

// AppendFoldedName appends the case-folded form of the field name in, such that two names
// fold to the same bytes exactly when encoding/json matches them case-insensitively.
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
		out = utf8.AppendRune(out, unicode.ToUpper(unicode.ToLower(r)))
		i += n
	}
	return out
}
