package ephemeral

import (
	"reflect"
	"testing"
	"time"
)

func TestIsFlat(t *testing.T) {
	type inner struct {
		N    int
		Name string
		At   time.Time
	}
	for _, c := range []struct {
		v    any
		want bool
	}{
		{0, true},
		{"s", true},
		{3.5, true},
		{time.Time{}, true},
		{[2]int{}, true},
		{[0]*int{}, true},
		{inner{}, true},
		{struct {
			In  inner
			Arr [3]inner
			c   complex128
		}{}, true},
		{[]int{}, false},
		{map[string]int{}, false},
		{new(int), false},
		{struct{ P *int }{}, false},
		{struct{ p []byte }{}, false},
		{[2][]int{}, false},
		{struct{ In struct{ M map[int]int } }{}, false},
		{struct{ F func() }{}, false},
		{struct{ C chan int }{}, false},
		{struct{ A any }{}, false},
	} {
		if got := isFlat(reflect.TypeOf(c.v)); got != c.want {
			t.Errorf("isFlat(%T) = %v, want %v", c.v, got, c.want)
		}
	}
}
