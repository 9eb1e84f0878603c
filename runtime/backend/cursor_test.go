package backend_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []backend.Cursor{
		{Epoch: "a", Seq: 0},
		{Epoch: "0123456789abcdef", Seq: 1},
		{Epoch: "Zz9", Seq: 1<<64 - 1},
	} {
		got, err := backend.ParseCursor(c.String())
		if err != nil || got != c {
			t.Errorf("ParseCursor(%q) = %+v, %v; want %+v", c.String(), got, err, c)
		}
	}
}

func TestParseCursorRejects(t *testing.T) {
	for _, s := range []string{
		"", "-", "abc", "abc-", "-1", "ab-01", "ab-+1", "ab--1", "a b-1", "ab-1 ", "ab-18446744073709551616",
		"é-1", "a-b-1", string(make([]byte, backend.MaxEpochBytes+1)) + "-1",
		"0000000000000000000000000000000000000000000000000000000000000000a-1",
	} {
		if c, err := backend.ParseCursor(s); !errors.Is(err, backend.ErrInvalidCursor) {
			t.Errorf("ParseCursor(%q) = %+v, %v; want ErrInvalidCursor", s, c, err)
		}
	}
}

// TestParseCursorMessage checks that the error names the text and the form a cursor has.
func TestParseCursorMessage(t *testing.T) {
	_, err := backend.ParseCursor("garbage")
	want := `ephemeral: invalid cursor: "garbage" is not of the form <epoch>-<version> of a snapshot's or an event's Cursor`
	if err == nil || err.Error() != want {
		t.Fatalf("ParseCursor(%q): %v, want %s", "garbage", err, want)
	}
}

func TestNewEpoch(t *testing.T) {
	now := time.UnixMilli(1_764_460_800_123)
	a, b := backend.NewEpoch(now), backend.NewEpoch(now)
	if !backend.ValidEpoch(a) || len(a) != 20 || a == b || a[:12] != "019ad20f287b" {
		t.Fatalf("NewEpoch(%v) = %q, %q", now, a, b)
	}
	if got, ok := backend.EpochTime(a); !ok || !got.Equal(now) {
		t.Fatalf("EpochTime(%q) = %v, %v; want %v", a, got, ok, now)
	}
	// Later epochs sort after earlier ones, whatever their random parts.
	prev := backend.NewEpoch(now)
	for ms := range int64(300) {
		e := backend.NewEpoch(now.Add(time.Duration(1+ms*ms*ms) * time.Millisecond))
		if e <= prev {
			t.Fatalf("epoch %q of a later time sorts before %q", e, prev)
		}
		prev = e
	}
	for _, e := range []string{"0123456789abcdef", "019ad20f287bABCDEF00", "019ad20f287b0000000", "x"} {
		if got, ok := backend.EpochTime(e); ok {
			t.Errorf("EpochTime(%q) = %v, true; want false", e, got)
		}
	}
	// The old form, 16 random hex digits, still makes a valid cursor.
	if _, err := backend.ParseCursor("0123456789abcdef-7"); err != nil {
		t.Errorf("old-form cursor: %v", err)
	}
}

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"abc-1", "0123456789abcdef-42", "x-0", "-", "a-01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := backend.ParseCursor(s)
		if err != nil {
			if !errors.Is(err, backend.ErrInvalidCursor) {
				t.Fatalf("ParseCursor(%q): error %v does not wrap ErrInvalidCursor", s, err)
			}
			return
		}
		if c.String() != s {
			t.Fatalf("ParseCursor(%q).String() = %q", s, c.String())
		}
	})
}

func TestEventKindString(t *testing.T) {
	want := map[backend.EventKind]string{
		backend.EventUpsert: "upsert", backend.EventTouch: "touch", backend.EventDelete: "delete",
		backend.EventExpire: "expire", backend.EventOverflow: "overflow", 0: "EventKind(0)", 9: "EventKind(9)",
	}
	for k, s := range want {
		if k.String() != s {
			t.Errorf("EventKind(%d).String() = %q, want %q", k, k.String(), s)
		}
	}
}

// TestQuote checks that Quote quotes short inputs as %q does and cuts long ones at a character
// boundary, so that errors about huge inputs stay short.
func TestQuote(t *testing.T) {
	for _, s := range []string{"", "abc", "a\"b\x00", strings.Repeat("x", 64)} {
		if got, want := backend.Quote(s), strconv.Quote(s); got != want {
			t.Errorf("Quote(%q) = %s, want %s", s, got, want)
		}
	}
	long := strings.Repeat("é", 100) // 200 bytes; byte 64 is the start of a character
	if got, want := backend.Quote(long), strconv.Quote(strings.Repeat("é", 32))+"... (200 bytes)"; got != want {
		t.Errorf("Quote of 200 bytes = %s, want %s", got, want)
	}
	odd := "x" + strings.Repeat("é", 100) // byte 64 is in the middle of a character
	if got, want := backend.Quote(odd), strconv.Quote("x"+strings.Repeat("é", 31))+"... (201 bytes)"; got != want {
		t.Errorf("Quote of 201 bytes = %s, want %s", got, want)
	}
}

// TestParseCursorErrorIsShort checks that the error about a cursor of a megabyte is short.
func TestParseCursorErrorIsShort(t *testing.T) {
	_, err := backend.ParseCursor(strings.Repeat("a", 1<<20))
	if !errors.Is(err, backend.ErrInvalidCursor) || len(err.Error()) > 200 {
		t.Errorf("ParseCursor of 1 MB: error of %d bytes: %.200v", len(err.Error()), err)
	}
}
