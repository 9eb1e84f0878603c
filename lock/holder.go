package lock

import (
	"encoding/json"
	"strconv"

	"github.com/ephemeral-go/ephemeral/runtime/jsonc"
)

// holder is the value of a lock's entry: who acquired it and when (Unix ms of its clock), and a
// random number that tells one acquire from another, so that an acquire whose outcome is
// unknown (its reply lost, its ctx ended in flight) finds its own lease.
type holder struct {
	Owner      string `json:"owner"`
	AcquiredAt int64  `json:"acquired_at"`
	Nonce      uint64 `json:"nonce"`
}

// is reports whether h is the value of the acquire that wrote v: its nonce and time, as the
// owner may not survive its round trip (invalid UTF-8 is stored as U+FFFD).
func (h holder) is(v holder) bool { return h.Nonce == v.Nonce && h.AcquiredAt == v.AcquiredAt }

// holderCodec encodes a holder as {"owner":"...","acquired_at":N,"nonce":N}.
type holderCodec struct{}

func (holderCodec) Encode(dst []byte, v *holder) ([]byte, error) {
	dst = append(dst, `{"owner":`...)
	dst = jsonc.AppendString(dst, v.Owner)
	dst = append(dst, `,"acquired_at":`...)
	dst = strconv.AppendInt(dst, v.AcquiredAt, 10)
	dst = append(dst, `,"nonce":`...)
	dst = strconv.AppendUint(dst, v.Nonce, 10)
	return append(dst, '}'), nil
}

// Decode reads a holder with encoding/json: it runs only when a lock is found held.
func (holderCodec) Decode(src []byte, v *holder) error { return json.Unmarshal(src, v) }
