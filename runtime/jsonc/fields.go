package jsonc

import (
	"encoding/binary"
	"math"
	"unicode"
	"unicode/utf8"
)

// Fields is the table of the JSON names of a struct's fields, in field order, that
// [Decoder.Field] matches keys against.
type Fields struct {
	names  []string
	folded []string
	slots  []slot            // by hash of the name
	mul    uint32            // multiplier of the hash
	shift  uint8             // 32 - log2(len(slots))
	fold   map[string]string // for large structs; first field wins
}

// slot is an entry of Fields.slots.
type slot struct {
	index int16  // 1 + the index of the name, 0 for none, -1 for several
	head  uint64 // head of the name, if there is one
}

// mapThreshold is the number of fields from which Fields matches folded names with a map
// instead of a linear scan.
const mapThreshold = 12

// NewFields returns the table of names, which must be in field order.
func NewFields(names ...string) *Fields {
	f := &Fields{names: names, folded: make([]string, len(names))}
	for i, n := range names {
		f.folded[i] = string(AppendFoldedName(nil, []byte(n)))
	}
	f.hashNames()
	if len(names) >= mapThreshold {
		f.fold = make(map[string]string, len(names))
		for i, n := range names {
			if _, ok := f.fold[f.folded[i]]; !ok {
				f.fold[f.folded[i]] = n
			}
		}
	}
	return f
}

// hashNames fills the slots, with the first of a few multipliers that leaves no two names in
// one slot if there is one.
func (f *Fields) hashNames() {
	bits := uint8(4)
	for 1<<bits < 4*len(f.names) && bits < 16 {
		bits++
	}
	f.shift = 32 - bits
	f.slots = make([]slot, 1<<bits)
	for _, mul := range []uint32{0x9e3779b1, 0x85ebca6b, 0xc2b2ae35, 0x27d4eb2f, 0x165667b1} {
		clear(f.slots)
		f.mul = mul
		unique := true
		for i, n := range f.names {
			s := &f.slots[f.hash([]byte(n))]
			if s.index != 0 || i >= math.MaxInt16 {
				s.index = -1
				unique = false
			} else {
				s.index, s.head = int16(i+1), head([]byte(n))
			}
		}
		if unique {
			return
		}
	}
}

// hash returns the slot of the name k, from its length and its first and last bytes.
func (f *Fields) hash(k []byte) uint32 {
	h := uint32(len(k)) << 16
	if len(k) > 0 {
		h |= uint32(k[0])<<8 | uint32(k[len(k)-1])
	}
	return h * f.mul >> f.shift
}

// head returns the first 8 bytes of k (fewer if k is shorter) as a little-endian number.
func head(k []byte) uint64 {
	n := min(len(k), 8)
	if cap(k) >= 8 {
		return binary.LittleEndian.Uint64(k[:8]) & (1<<(8*n) - 1)
	}
	var h uint64
	for i, c := range k[:n] {
		h |= uint64(c) << (8 * i)
	}
	return h
}

func (f *Fields) match(k []byte, d *Decoder) string {
	switch s := f.slots[f.hash(k)]; {
	case s.index > 0:
		n := f.names[s.index-1]
		if len(k) == len(n) && head(k) == s.head && (len(n) <= 8 || string(k[8:]) == n[8:]) {
			return n
		}
	case s.index < 0:
		for _, n := range f.names {
			if string(k) == n {
				return n
			}
		}
	}
	d.fold = AppendFoldedName(d.fold[:0], k)
	if f.fold != nil {
		return f.fold[string(d.fold)]
	}
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
