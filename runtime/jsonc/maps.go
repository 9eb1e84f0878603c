package jsonc

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// SortedKeys returns the keys of m in the order encoding/json writes them.
func SortedKeys[M ~map[K]V, K ~string, V any](m M) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// SortedIntKeys returns the keys of m in the order encoding/json writes them: sorted as
// decimal strings.
func SortedIntKeys[M ~map[K]V, K ~int | ~int8 | ~int16 | ~int32 | ~int64, V any](m M) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b K) int {
		var x, y [24]byte
		return strings.Compare(string(strconv.AppendInt(x[:0], int64(a), 10)), string(strconv.AppendInt(y[:0], int64(b), 10)))
	})
	return keys
}

// SortedUintKeys returns the keys of m in the order encoding/json writes them: sorted as
// decimal strings.
func SortedUintKeys[M ~map[K]V, K ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr, V any](m M) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b K) int {
		var x, y [24]byte
		return strings.Compare(string(strconv.AppendUint(x[:0], uint64(a), 10)), string(strconv.AppendUint(y[:0], uint64(b), 10)))
	})
	return keys
}

// TextKey is a map key with the text its MarshalText method returned.
type TextKey[K any] struct {
	Key  K
	Text string
}

// SortedTextKeys returns the keys of m with their MarshalText output, sorted by that text as
// encoding/json writes them. An error from MarshalText is recorded in e; typ names K.
func SortedTextKeys[M ~map[K]V, K interface {
	comparable
	MarshalText() ([]byte, error)
}, V any](e *Encoder, typ string, m M) []TextKey[K] {
	keys := make([]TextKey[K], 0, len(m))
	for k := range m {
		b, err := k.MarshalText()
		if err != nil {
			e.Fail(&MarshalerError{Type: typ, Err: err, Func: "MarshalText"})
		}
		keys = append(keys, TextKey[K]{k, string(b)})
	}
	slices.SortFunc(keys, func(a, b TextKey[K]) int { return cmp.Compare(a.Text, b.Text) })
	return keys
}
