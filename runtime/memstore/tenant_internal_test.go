package memstore

import (
	"reflect"
	"testing"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// TestReadIntoSetsEveryField checks that readInto, which sets the fields of backend.Entry one
// by one (entry.fill), leaves nothing of what the slot of a reused snapshot slice held: a field
// added to backend.Entry but not to fill fails it (and needs setting in redisstore's
// parseSnapshot too, which sets them so as well).
func TestReadIntoSetsEveryField(t *testing.T) {
	e := &entry{key: "k", value: []byte("v"), version: 3, created: 1, updated: 2, expires: 9, t: &tenant{epoch: "e1"}}
	var dst backend.Entry
	v := reflect.ValueOf(&dst).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString("junk")
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		case reflect.Int64:
			f.SetInt(-7)
		case reflect.Uint64:
			f.SetUint(77)
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		default:
			t.Fatalf("backend.Entry.%s is a %s: set it in entry.fill and in redisstore's parseSnapshot, and here", v.Type().Field(i).Name, f.Kind())
		}
	}
	e.readInto(&dst)
	if e.memo == nil || dst.Memo != e.memo {
		t.Fatalf("readInto over a used slot gave the memo %p, want the entry's, %p", dst.Memo, e.memo)
	}
	dst.Memo = nil
	want := backend.Entry{Key: "k", Value: []byte("v"), Version: 3, Epoch: "e1", CreatedAt: 1, UpdatedAt: 2, ExpiresAt: 9}
	if !reflect.DeepEqual(dst, want) {
		t.Fatalf("readInto over a used slot gave %+v, want %+v", dst, want)
	}
}
