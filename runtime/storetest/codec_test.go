package storetest

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestItemCodec checks that the suite's codec round-trips the values the suite uses and rejects
// what it did not produce, so that a backend that alters a value fails the suite.
func TestItemCodec(t *testing.T) {
	var c itemCodec
	for _, v := range []item{{}, {Name: "é\x00\"\\\n ☃", N: -7}, {Name: `,"name":}`, N: 1 << 40}} {
		buf, err := c.Encode(nil, &v)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", v, err)
		}
		var got item
		if err := c.Decode(buf, &got); err != nil || got != v {
			t.Errorf("Decode(%s) = %+v, %v; want %+v", buf, got, err, v)
		}
	}
	if n := len(mustEncode(t, item{Name: "abc"})); n != itemOverhead+3 {
		t.Errorf("encoded size %d, want itemOverhead + 3 = %d", n, itemOverhead+3)
	}
	for _, bad := range []string{"", "{}", `{"n":x,"name":""}`, `{"n":1,"name":"x}`, `{"n":1,"name":""`, `{"n":1,"nom":""}`} {
		var got item
		if err := c.Decode([]byte(bad), &got); err == nil {
			t.Errorf("Decode(%s) = %+v, want an error", bad, got)
		}
	}
}

func mustEncode(t *testing.T, v item) []byte {
	t.Helper()
	buf, err := itemCodec{}.Encode(nil, &v)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}
