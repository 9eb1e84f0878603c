package directive

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ephemeral-go/ephemeral"
)

// TestOptionFields checks the table against package ephemeral: each option's Config field
// exists and has the type of the option's value, and the limits are named like the fields of
// ephemeral.Limits.
func TestOptionFields(t *testing.T) {
	config := reflect.TypeFor[ephemeral.Config[string, struct{}]]()
	for _, o := range Options {
		if o.Field == "" {
			continue
		}
		f, ok := config.FieldByName(strings.Split(o.Field, ".")[0])
		for _, name := range strings.Split(o.Field, ".")[1:] {
			if ok {
				f, ok = f.Type.FieldByName(name)
			}
		}
		if !ok {
			t.Errorf("option %s sets Config.%s, which does not exist", o.Name, o.Field)
			continue
		}
		if v := reflect.TypeOf(o.Get(&Settings{})); v != f.Type {
			t.Errorf("option %s has values of type %s, Config.%s has type %s", o.Name, v, o.Field, f.Type)
		}
	}
	limits, ours := reflect.TypeFor[ephemeral.Limits](), reflect.TypeFor[Limits]()
	for f := range ours.Fields() {
		if rf, ok := limits.FieldByName(f.Name); !ok || rf.Type != f.Type {
			t.Errorf("Limits.%s %s is not a field of ephemeral.Limits", f.Name, f.Type)
		}
	}
}

func TestClosest(t *testing.T) {
	names := []string{"id", "ttl", "maxEntries"}
	for in, want := range map[string]string{"tll": "ttl", "maxentries": "maxEntries", "MaxEntrys": "maxEntries", "color": ""} {
		if got := Closest(in, names); got != want {
			t.Errorf("Closest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNearMiss(t *testing.T) {
	for text, warned := range map[string]bool{
		"// ephemeral:store id=a ttl=1s":   true,
		"//\tephemeral:store id=a":         true,
		"/* ephemeral:store id=a */":       true,
		"/*ephemeral:store*/":              true,
		"// ephemeral:store":               true,
		"// ephemeral:stored values":       false,
		"// The ephemeral:store directive": false,
	} {
		if got := nearMiss(text) != ""; got != warned {
			t.Errorf("nearMiss(%q) warns: %v, want %v", text, got, warned)
		}
	}
}
