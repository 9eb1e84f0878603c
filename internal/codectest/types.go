// Package codectest holds types that use every feature of the generated JSON codecs, their
// generated codecs (codecs_gen.go, written by the codecgen tests with -update), and the tests
// that compare those codecs with encoding/json.
package codectest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ephemeral-go/ephemeral/internal/codectest/other"
)

// Status is an enum of named string type.
type Status string

// Level is an enum of named integer type.
type Level int

// Presence is the benchmark's small value.
type Presence struct {
	Room   string    `json:"room"`
	UserID string    `json:"userId"`
	Status Status    `json:"status"`
	Level  Level     `json:"level"`
	Since  time.Time `json:"since"`
	Tabs   []string  `json:"tabs"`
}

// Tagged has no references but slices of flat values, one of a named type and one through an
// embedded struct: its codec has CloneFunc (see ephemeral.BatchCloner), as Presence's has.
type Tagged struct {
	TaggedBase
	Names []string `json:"names"`
	Raw   Bytes    `json:"raw"`
}

// TaggedBase is embedded in Tagged.
type TaggedBase struct {
	Scores []float64 `json:"scores"`
}

// Document is the benchmark's larger, nested value.
type Document struct {
	ID       string            `json:"id"`
	Owner    Presence          `json:"owner"`
	Members  []Presence        `json:"members"`
	Items    []other.Item      `json:"items"`
	Scores   []float64         `json:"scores"`
	Meta     *Meta             `json:"meta,omitempty"`
	Revision uint64            `json:"revision"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// Meta is a nested struct of this package.
type Meta struct {
	Created time.Time     `json:"created"`
	TTL     time.Duration `json:"ttl"`
	Note    string        `json:"note,omitempty"`
	Flags   [3]bool       `json:"flags"`
}

// Span is a comparable struct with an IsZero method of its own, which omitzero calls: a span
// is zero when it is empty, whatever its ends.
type Span struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// IsZero reports whether the span is empty.
func (s Span) IsZero() bool { return s.From == s.To }

// Budget has an IsZero method on its pointer, which omitzero calls too.
type Budget struct {
	Left float64 `json:"left"`
}

// IsZero reports whether nothing is left.
func (b *Budget) IsZero() bool { return b.Left <= 0 }

// Zeroed is a map value with omitzero fields: encoding/json calls a pointer's IsZero method on
// a copy there.
type Zeroed struct {
	B Budget    `json:"b,omitzero"`
	T time.Time `json:"t,omitzero"`
	N int       `json:"n,omitzero"`
}

// Item has the same name as other.Item.
type Item struct {
	Name  string  `json:"name"`
	Price float32 `json:"price"`
}

// Money has pointer-receiver JSON methods: encoding/json calls MarshalJSON only where the
// value is addressable (not in map values).
type Money struct {
	Cents int64
}

// MarshalJSON writes Money as an object with insignificant white space, which the encoder
// must compact.
func (m *Money) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "{ \"cents\" : %d,\n \"tag\": \"<&>\" }", m.Cents), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Money) UnmarshalJSON(b []byte) error {
	var v struct{ Cents int64 }
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	m.Cents = v.Cents
	return nil
}

// Celsius has value-receiver JSON methods and fails on absurd values.
type Celsius float64

// MarshalJSON writes the temperature as a string with a unit.
func (c Celsius) MarshalJSON() ([]byte, error) {
	if c < -273.15 {
		return nil, errors.New("below absolute zero")
	}
	return []byte(strconv.Quote(strconv.FormatFloat(float64(c), 'f', -1, 64) + "C")), nil
}

// UnmarshalJSON reads what MarshalJSON writes; null leaves the value unchanged.
func (c *Celsius) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return err
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "C"), 64)
	*c = Celsius(f)
	return err
}

// Color has value-receiver text methods; it is also used as a map key.
type Color struct {
	R, G, B uint8
}

// MarshalText writes #rrggbb.
func (c Color) MarshalText() ([]byte, error) {
	return fmt.Appendf(nil, "#%02x%02x%02x", c.R, c.G, c.B), nil
}

// UnmarshalText reads #rrggbb.
func (c *Color) UnmarshalText(b []byte) error {
	if len(b) != 7 || b[0] != '#' {
		return fmt.Errorf("bad color %q", b)
	}
	n, err := strconv.ParseUint(string(b[1:]), 16, 32)
	if err != nil {
		return err
	}
	c.R, c.G, c.B = uint8(n>>16), uint8(n>>8), uint8(n)
	return nil
}

// Word has pointer-receiver text methods and writes HTML characters, which the encoder
// escapes.
type Word string

// MarshalText writes the word between angle brackets.
func (w *Word) MarshalText() ([]byte, error) { return []byte("<" + string(*w) + ">"), nil }

// UnmarshalText reads what MarshalText writes.
func (w *Word) UnmarshalText(b []byte) error {
	*w = Word(strings.TrimSuffix(strings.TrimPrefix(string(b), "<"), ">"))
	return nil
}

// Quote is a map key whose pointer has UnmarshalJSON besides the text methods: encoding/json
// reads such a key with UnmarshalJSON, which gets it as quoted in the document, escapes and
// all; it writes it with MarshalText.
type Quote string

// MarshalText writes q.
func (q Quote) MarshalText() ([]byte, error) { return []byte(q), nil }

// UnmarshalText sets q to b; encoding/json does not call it for a map key.
func (q *Quote) UnmarshalText(b []byte) error { *q = Quote(b); return nil }

// UnmarshalJSON keeps the key as written, and fails on "bad".
func (q *Quote) UnmarshalJSON(b []byte) error {
	if string(b) == `"bad"` {
		return errors.New("a bad quote")
	}
	*q = Quote("json " + string(b))
	return nil
}

// Code is an integer map key with text methods, which encoding/json uses rather than the
// decimal integer: "c" and the number in hexadecimal.
type Code int

// MarshalText writes c.
func (c Code) MarshalText() ([]byte, error) {
	return strconv.AppendInt([]byte("c"), int64(c), 16), nil
}

// UnmarshalText reads what MarshalText writes.
func (c *Code) UnmarshalText(b []byte) error {
	s, ok := strings.CutPrefix(string(b), "c")
	if !ok {
		return fmt.Errorf("bad code %q", b)
	}
	n, err := strconv.ParseInt(s, 16, 0)
	*c = Code(n)
	return err
}

// Bytes is a named byte slice, written as base64.
type Bytes []byte

// Tags is a named slice type.
type Tags []string

// Counts is a named map type.
type Counts map[string]int

// Embedded is embedded by value in Everything.
type Embedded struct {
	Promoted string `json:"promoted"`
	Shadowed int    `json:"shadowed"`
}

// EmbeddedPtr is embedded by pointer in Everything.
type EmbeddedPtr struct {
	Deep  string `json:"deep"`
	Count int    `json:"count,omitempty"`
}

// Everything has a field of every supported kind.
type Everything struct {
	Embedded
	*EmbeddedPtr
	other.Base

	Shadowed string `json:"shadowed"` // hides Embedded.Shadowed

	B    bool
	I    int
	I8   int8
	I16  int16
	I32  int32
	I64  int64
	U    uint
	U8   uint8
	U16  uint16
	U32  uint32
	U64  uint64
	Uptr uintptr
	F32  float32
	F64  float64
	S    string
	St   Status
	Lv   Level
	Dur  time.Duration

	Bytes  []byte
	NBytes Bytes
	Time   time.Time
	TimeP  *time.Time

	P   *int
	PP  **string
	PSt *Status

	Ints   []int
	Stats  []Status
	IntPs  []*int
	Nested [][]string
	Tags   Tags
	Arr    [3]int
	Arr0   [0]int
	ArrB   [2]byte
	ArrS   [2]Item

	M       map[string]int
	MI      map[int]string
	MU      map[uint8]bool
	MSt     map[Status]float64
	MColor  map[Color]int
	MCode   map[Code]string
	MWord   map[Word]int
	MQuote  map[Quote]int
	MSlice  map[string][]int
	MStruct map[string]Item
	MPtr    map[string]*Item
	MMoney  map[string]Money
	Counts  Counts

	Item    Item
	ItemP   *Item
	Other   other.Item
	OtherP  *other.Item
	Anon    struct{ X, Y int }
	Money   Money
	MoneyP  *Money
	Temp    Celsius
	TempP   *Celsius
	Color   Color
	ColorP  *Color
	Word    Word
	Raw     json.RawMessage
	Monies  []Money
	Words   [2]Word
	Renamed int `json:"renamed_field"`
	HTML    int `json:"a<b>&c"`
	Uni     int `json:"naïve"`
	//lint:ignore SA5008 "-," names the field "-", as encoding/json documents
	Dash    int `json:"-,"`
	Skipped int `json:"-"`
	//lint:ignore SA5008 an invalid name falls back to the Go name
	Bad int `json:"bad\"name"`

	OmitS   string         `json:"os,omitempty"`
	OmitI   int            `json:"oi,omitempty"`
	OmitU   uint           `json:"ou,omitempty"`
	OmitF   float64        `json:"of,omitempty"`
	OmitF32 float32        `json:"of32,omitempty"`
	OmitB   bool           `json:"ob,omitempty"`
	OmitP   *int           `json:"op,omitempty"`
	OmitSl  []int          `json:"osl,omitempty"`
	OmitM   map[string]int `json:"om,omitempty"`
	OmitA   [0]int         `json:"oa,omitempty"`
	OmitA1  [1]int         `json:"oa1,omitempty"`
	OmitT   time.Time      `json:"ot,omitempty"`
	OmitSt  Item           `json:"ost,omitempty"`

	ZeroI    int               `json:"zi,omitzero"`
	ZeroF    float64           `json:"zf,omitzero"`
	ZeroS    string            `json:"zs,omitzero"`
	ZeroB    bool              `json:"zb,omitzero"`
	ZeroP    *int              `json:"zp,omitzero"`
	ZeroSl   []int             `json:"zsl,omitzero"`
	ZeroM    map[string]int    `json:"zm,omitzero"`
	ZeroA    [2]int            `json:"za,omitzero"`
	ZeroT    time.Time         `json:"zt,omitzero"`
	ZeroPT   *time.Time        `json:"zpt,omitzero"`
	ZeroSt   Item              `json:"zst,omitzero"`
	ZeroLv   Level             `json:"zlv,omitzero"`
	ZeroSp   Span              `json:"zsp,omitzero"`
	ZeroBu   Budget            `json:"zbu,omitzero"`
	ZeroPB   *Budget           `json:"zpb,omitzero"`
	ZeroBoth []int             `json:"zboth,omitempty,omitzero"`
	BothI    int               `json:"bi,omitempty,omitzero"`
	BothB    bool              `json:"bb,omitempty,omitzero"`
	BothS    Status            `json:"bs,omitempty,omitzero"`
	BothP    *int              `json:"bp,omitempty,omitzero"`
	BothM    map[string]int    `json:"bm,omitempty,omitzero"`
	BothPT   *time.Time        `json:"bpt,omitempty,omitzero"`
	BothT    time.Time         `json:"bt,omitempty,omitzero"`
	BothSp   Span              `json:"bsp,omitempty,omitzero"`
	ZeroMap  map[string]Zeroed `json:"zmap"`

	QI  int     `json:"qi,string"`
	QB  bool    `json:"qb,string"`
	QF  float64 `json:"qf,string"`
	QS  string  `json:"qs,string"`
	QP  *int    `json:"qp,string"`
	QU  uint8   `json:"qu,string"`
	QSt Status  `json:"qst,string"`
	//lint:ignore SA5008 the option does not apply to slices, and must be ignored
	QArr []int `json:"qarr,string"`

	Pair  Pair[string, Level] `json:"pair"`
	Alias ItemAlias           `json:"alias"`
}

// Pair is a generic struct; its instantiations get their own helpers.
type Pair[K comparable, V any] struct {
	Key   K `json:"key"`
	Value V `json:"value"`
}

// ItemAlias is an alias of Item.
type ItemAlias = Item

// A1 and A2 are embedded together in Conflicts.
type A1 struct {
	Name   string
	X      int
	Tagged int `json:"tagged"`
	Only1  int
}

// A2 is embedded with A1.
type A2 struct {
	Name   string
	Y      int
	Other  int `json:"tagged"`
	Only2  int
	Winner int `json:"Only1"` // tagged: wins over A1.Only1 at the same depth
}

// Conflicts exercises encoding/json's rules for fields promoted from embedded structs.
type Conflicts struct {
	A1
	*A2
	X string // depth 0 beats A1.X
	Deeper
}

// Deeper is embedded in Conflicts and embeds A1 again one level deeper.
type Deeper struct {
	A1
	Y int `json:"Y"`
}

// Node is a linked list: a recursive type through a pointer.
type Node struct {
	Value int   `json:"value"`
	Next  *Node `json:"next,omitempty"`
}

// Web is recursive through map values, which encoders copy: a map that holds itself, through a
// Web value, is a cycle that only the map identifies.
type Web struct {
	Name  string         `json:"name"`
	Links map[string]Web `json:"links,omitempty"`
}

// Webs is a named map type that is recursive through itself.
type Webs map[string]Webs

// WebRoot holds both.
type WebRoot struct {
	Web  Web  `json:"web"`
	Webs Webs `json:"webs"`
}

// Tree is recursive through a slice and a map.
type Tree struct {
	Name   string           `json:"name"`
	Kids   []Tree           `json:"kids,omitempty"`
	ByName map[string]*Tree `json:"byName,omitempty"`
}

// Folded has names that differ only in case, for case-insensitive decoding.
type Folded struct {
	Name   string `json:"name"`
	NAME   string `json:"NAME"`
	Kelvin string `json:"k"` // K folds with the Kelvin sign
	Sharp  string `json:"ſ"` // long s folds with S
}

// WithMarshaler is a struct that embeds a type with MarshalJSON: the promoted method makes
// the whole struct a json.Marshaler.
type WithMarshaler struct {
	Money
	Extra string
}

// Set is a map with JSON methods, which write it as a sorted array: references behind a type's
// own methods, which Clone copies by a round trip.
type Set map[string]struct{}

// MarshalJSON writes the members of s as a sorted array, or null for a nil Set.
func (s Set) MarshalJSON() ([]byte, error) {
	if s == nil {
		return []byte("null"), nil
	}
	members := slices.AppendSeq(make([]string, 0, len(s)), maps.Keys(s))
	slices.Sort(members)
	return json.Marshal(members)
}

// UnmarshalJSON reads what MarshalJSON writes; null leaves s unchanged.
func (s *Set) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var members []string
	if err := json.Unmarshal(b, &members); err != nil {
		return err
	}
	*s = make(Set, len(members))
	for _, m := range members {
		(*s)[m] = struct{}{}
	}
	return nil
}

// Tokens has MarshalText but UnmarshalJSON, which reads the JSON string that the codecs write
// for the text: no pair of its own methods round trips it, the codecs do.
type Tokens []string

// MarshalText writes the tokens as a JSON array.
func (t Tokens) MarshalText() ([]byte, error) { return json.Marshal([]string(t)) }

// UnmarshalJSON reads a string that holds what MarshalText writes.
func (t *Tokens) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	return json.Unmarshal([]byte(s), (*[]string)(t))
}

// Grid is a named array type whose elements hold references.
type Grid [2][]int

// Forest is a named slice of a recursive type.
type Forest []Tree

// Inner is embedded by pointer in Refs; its promoted fields hold references.
type Inner struct {
	Notes []string `json:"notes"`
	Score *float64 `json:"score"`
}

// Outer is embedded by value in Refs; its promoted fields hold references.
type Outer struct {
	Labels map[string]string `json:"labels"`
	Hosts  []net.IP          `json:"hosts"`
}

// Refs holds references in every place that Clone must copy: behind text and JSON methods,
// in promoted fields, named array and slice types, and fields that the codec does not encode.
type Refs struct {
	*Inner
	Outer

	IP     net.IP                     `json:"ip"`
	IPP    *net.IP                    `json:"ipp"`
	ByHost map[string]net.IP          `json:"byHost"`
	Set    Set                        `json:"set"`
	SetP   *Set                       `json:"setp"`
	Sets   []Set                      `json:"sets"`
	Tokens Tokens                     `json:"tokens"`
	Raws   map[string]json.RawMessage `json:"raws"`
	Grid   Grid                       `json:"grid"`
	Forest Forest                     `json:"forest"`

	Skipped []int `json:"-"`
	hidden  []int
}

// Ref is a map key that holds a pointer, with text methods.
type Ref struct {
	Name *string
}

// MarshalText writes the name; a nil Name is an error.
func (r Ref) MarshalText() ([]byte, error) {
	if r.Name == nil {
		return nil, errors.New("no name")
	}
	return []byte(*r.Name), nil
}

// UnmarshalText sets Name to a new string.
func (r *Ref) UnmarshalText(b []byte) error {
	s := string(b)
	r.Name = &s
	return nil
}

// RefKeys has map keys that hold pointers, which Clone copies by a round trip through their
// text methods.
type RefKeys struct {
	ByRef map[Ref]int
}
