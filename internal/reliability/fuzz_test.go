package reliability

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/jsonc"
)

// Fuzz targets for the decoders the packages do not fuzz themselves. Run them with
// .ci/fuzz; go test runs their seeds.

// keyBits are the bit sizes of the integer key fields.
var keyBits = [...]int{0, 8, 16, 32, 64}

// FuzzParseKeyInt: a key part parses only in its canonical form, and bad input is an error
// wrapping ErrInvalidKey, never a panic.
func FuzzParseKeyInt(f *testing.F) {
	for _, s := range []string{"0", "-5", "+5", "-05", "128", "-9223372036854775808", "", "1e3", " 1"} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, s string, b uint8) {
		bits := keyBits[int(b)%len(keyBits)]
		v, err := ephemeral.ParseKeyInt(s, bits)
		switch {
		case err != nil && !errors.Is(err, ephemeral.ErrInvalidKey):
			t.Fatalf("ParseKeyInt(%q, %d): %v does not wrap ErrInvalidKey", s, bits, err)
		case err == nil && ephemeral.FormatKeyInt(v) != s:
			t.Fatalf("ParseKeyInt(%q, %d) = %d, which formats as %q", s, bits, v, ephemeral.FormatKeyInt(v))
		}
	})
}

// FuzzParseKeyUint is FuzzParseKeyInt for unsigned fields.
func FuzzParseKeyUint(f *testing.F) {
	for _, s := range []string{"0", "-0", "+5", "05", "256", "18446744073709551615", "18446744073709551616", ""} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, s string, b uint8) {
		bits := keyBits[int(b)%len(keyBits)]
		v, err := ephemeral.ParseKeyUint(s, bits)
		switch {
		case err != nil && !errors.Is(err, ephemeral.ErrInvalidKey):
			t.Fatalf("ParseKeyUint(%q, %d): %v does not wrap ErrInvalidKey", s, bits, err)
		case err == nil && ephemeral.FormatKeyUint(v) != s:
			t.Fatalf("ParseKeyUint(%q, %d) = %d, which formats as %q", s, bits, v, ephemeral.FormatKeyUint(v))
		}
	})
}

// FuzzDecodeScalars: the decoder that generated codecs call reads every scalar as
// encoding/json does: the same value, or an error where encoding/json has one.
func FuzzDecodeScalars(f *testing.F) {
	for _, s := range []string{`0`, `-1`, `1e2`, `1.5`, `18446744073709551615`, `-9223372036854775809`, `1e400`,
		`true`, `null`, `"a\u00e9"`, `"\ud800"`, ` 7 `, `07`, `-`, `"x`, `[1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		checkScalar(t, doc, (*jsonc.Decoder).Int64)
		checkScalar(t, doc, (*jsonc.Decoder).Int8)
		checkScalar(t, doc, (*jsonc.Decoder).Uint64)
		checkScalar(t, doc, (*jsonc.Decoder).Uint16)
		checkScalar(t, doc, (*jsonc.Decoder).Float64)
		checkScalar(t, doc, (*jsonc.Decoder).Float32)
		checkScalar(t, doc, (*jsonc.Decoder).Bool)
		checkScalar(t, doc, (*jsonc.Decoder).String)
	})
}

// checkScalar decodes doc with decode and with encoding/json into a zero T and compares.
func checkScalar[T comparable](t *testing.T, doc []byte, decode func(*jsonc.Decoder, *T)) {
	var got, want T
	var d jsonc.Decoder
	d.Reset(doc)
	decode(&d, &got)
	err := d.Finish()
	wantErr := json.Unmarshal(doc, &want)
	if (err == nil) != (wantErr == nil) || err == nil && got != want {
		t.Fatalf("%q as %T: jsonc %v, %v; encoding/json %v, %v", doc, got, got, err, want, wantErr)
	}
}
