package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"slices"
	"time"

	"github.com/ephemeral-go/ephemeral"
)

// The messages of the event stream. Every message's SSE id is the store cursor after it, so a
// browser that reconnects with Last-Event-ID resumes exactly where it stopped.
type (
	// stateMessage ("state") is the whole room; the page replaces what it has.
	stateMessage struct {
		Now     int64        `json:"now"` // the server's clock, Unix ms, to correct the page's
		Members []memberView `json:"members"`
	}
	// memberView ("upsert") is a member who joined or changed.
	memberView struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		Status   Status `json:"status"`
		JoinedAt int64  `json:"joinedAt"` // Unix ms: when the member's key became live
	}
	// goneMessage ("delete" or "expire") is a member who left or whose page went away.
	goneMessage struct {
		ID     string `json:"id"`
		Reason string `json:"reason,omitempty"`
	}
)

// viewOf returns what a page shows of the member m whose ID is id, in the room since joined.
func viewOf(id string, m *Member, joined time.Time) memberView {
	return memberView{ID: id, Name: m.Name, Status: m.Status, JoinedAt: joined.UnixMilli()}
}

// errResync ends the forwarding of a reader whose events no longer follow on from what the
// page has: the page needs the whole state again.
var errResync = errors.New("reader overflowed")

// writeTimeout bounds each write to a browser, so that a client that stopped reading does not
// hold its goroutine forever.
const writeTimeout = 10 * time.Second

// events streams a room to the browser as Server-Sent Events: the state, then every change.
// A browser that reconnects sends the cursor of the last message it got as Last-Event-ID and
// gets the changes after it; when that cursor is invalid or no longer available, it gets the
// whole state again. The stream ends when the client goes away or the server shuts down.
//
// A page names its member in the stream's URL (?id=…&renew=…, its renewal token, which can do
// nothing but that and expires: see renewToken), and the stream keeps that member alive while
// it is open (see renewals) and sends the page a fresh renewal token, a "renew" message, once
// half of the last one's life is spent.
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	room, ok := roomParam(w, r)
	if !ok {
		return
	}
	var renew *renewal
	if q := r.URL.Query(); q.Has("id") {
		exp, ok := s.validRenewToken(room, q.Get("id"), q.Get("renew"))
		if !ok {
			http.Error(w, "bad or expired renewal token", http.StatusForbidden)
			return
		}
		renew = s.renewals.stream(room, q.Get("id"))
		renew.tokenExp = exp
		defer renew.setLive(false) // the stream ends: its member is not renewed by it any more
	}
	done, reason := s.guard.openStream(r)
	switch reason {
	case rejectStreams:
		s.rejected.WithLabelValues(reason).Inc()
		http.Error(w, "too many event streams from your address", http.StatusTooManyRequests)
		return
	case rejectStreamRate:
		s.tooMany(w, reason, "2", "too many event streams opened from your address; wait a moment")
		return
	}
	defer done()
	ctx := r.Context()
	var rd *ephemeral.Reader[string, Member]
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		var err error
		rd, err = s.store.Reader(ctx, ephemeral.WithTenant(room), ephemeral.After(last))
		if err != nil && !errors.Is(err, ephemeral.ErrInvalidCursor) {
			serverError(w, "resume events", err)
			return
		}
		if rd != nil && renew != nil {
			// Resumed without a state: the member is taken to be in the room, which its
			// first touch tells for sure.
			renew.setLive(true)
		}
	}
	defer func() {
		if rd != nil {
			rd.Close()
		}
	}()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // tell reverse proxies not to buffer the stream
	sse := &sseWriter{w: w, rc: http.NewResponseController(w)}
	// The retry goes out with the state, in its write and flush; a resumed stream, which has
	// no state to send, sends it at once, so that the page knows it is connected.
	sse.buf = append(sse.buf, "retry: 2000\n\n"...)
	if rd != nil {
		if err := sse.flush(); err != nil {
			return
		}
	}
	for {
		if rd == nil {
			var err error
			if rd, err = s.sendState(ctx, sse, room, renew); err != nil {
				logStreamEnd(ctx, room, err)
				return
			}
		}
		err := s.forward(ctx, sse, rd, room, renew)
		if !errors.Is(err, errResync) {
			logStreamEnd(ctx, room, err)
			return
		}
		rd.Close()
		rd = nil
	}
}

// sendState sends the room's snapshot and returns a reader of the changes after it. It tells
// renew whether the stream's member is in the room.
func (s *server) sendState(ctx context.Context, sse *sseWriter, room string, renew *renewal) (*ephemeral.Reader[string, Member], error) {
	snap, err := s.store.Snapshot(ctx, ephemeral.WithTenant(room))
	var skipped *ephemeral.SnapshotError
	if errors.As(err, &skipped) {
		// Entries this version cannot read (another program's, a newer version's): the page
		// gets the rest of the room.
		log.Printf("presence: room %s: %v", room, err)
	} else if err != nil {
		return nil, err
	}
	rd, err := s.store.Reader(ctx, ephemeral.WithTenant(room), ephemeral.After(snap.Cursor))
	if err != nil {
		return nil, err
	}
	msg := stateMessage{Now: time.Now().UnixMilli(), Members: make([]memberView, len(snap.Entries))}
	for i := range snap.Entries {
		e := &snap.Entries[i]
		msg.Members[i] = viewOf(e.Key, &e.Value, e.CreatedAt)
	}
	if renew != nil {
		renew.setLive(slices.ContainsFunc(snap.Entries, func(e ephemeral.Entry[string, Member]) bool { return e.Key == renew.id }))
	}
	if err := sse.send(snap.Cursor, "state", msg); err != nil {
		rd.Close()
		return nil, err
	}
	return rd, nil
}

// forward sends the reader's events of room to the browser until the request ends (an error),
// the reader overflows (errResync) or a write fails. While the room is quiet it sends a comment
// every s.ping. The events of renew's member (nil: none) tell renew whether the member is in
// the room; the server's renewals touch it (see renewals). Once half of the page's last
// renewal token is spent (looked at every s.ping at least), it sends the page a fresh one. A
// busy stream costs no timer per event: each wait lasts until s.ping after the last write.
func (s *server) forward(ctx context.Context, sse *sseWriter, rd *ephemeral.Reader[string, Member], room string, renew *renewal) error {
	for {
		if renew != nil && s.now().Unix() >= renew.tokenExp-int64(renewTokenLife/time.Second)/2 {
			renew.tokenExp = s.renewExpiry()
			if err := sse.send("", "renew", renewed{Renew: s.renewToken(room, renew.id, renew.tokenExp)}); err != nil {
				return err
			}
		}
		wait := s.ping - time.Since(sse.last)
		if wait <= 0 {
			if err := sse.write(":\n\n"); err != nil {
				return err
			}
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, wait)
		err := s.forwardUntil(rctx, sse, rd, renew)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return err
		}
	}
}

// forwardUntil is forward until ctx is done. The events that are ready when one arrives go
// out together, up to maxBatch bytes, in one write and one flush: a stream that falls behind
// catches up in fewer writes. The events of renew's member tell renew whether the member is
// in the room.
func (s *server) forwardUntil(ctx context.Context, sse *sseWriter, rd *ephemeral.Reader[string, Member], renew *renewal) error {
	for {
		ev, err := rd.Recv(ctx)
		for {
			if err := sse.addEvent(ev, err); err != nil {
				// The stream ends: the page reconnects with the id of the last event it got,
				// and gets what is buffered again (or, on errResync, the state instead).
				return err
			}
			if renew != nil && err == nil && ev.Key == renew.id && ev.Kind != ephemeral.EventOverflow {
				renew.setLive(ev.Kind == ephemeral.EventUpsert || ev.Kind == ephemeral.EventTouch)
			}
			var ok bool
			if len(sse.buf) >= maxBatch {
				break
			}
			if ev, ok, err = rd.TryRecv(); !ok {
				break
			}
		}
		if err := sse.flush(); err != nil {
			return err
		}
	}
}

// maxBatch is about the most bytes of events a stream writes at once.
const maxBatch = 32 << 10

// addEvent adds the message of a reader's event, or of its error, to s.buf. It skips the
// events of a foreign client, and returns errResync for an overflow.
func (s *sseWriter) addEvent(ev ephemeral.Event[string, Member], err error) error {
	switch {
	case errors.Is(err, ephemeral.ErrDecode), errors.Is(err, ephemeral.ErrInvalidKey):
		log.Printf("presence: skip event: %v", err) // written by a foreign client
		return nil
	case err != nil:
		return err
	}
	switch ev.Kind {
	case ephemeral.EventOverflow:
		return errResync
	case ephemeral.EventUpsert:
		return s.add(ev.Cursor, "upsert", viewOf(ev.Key, &ev.Value, ev.CreatedAt))
	case ephemeral.EventDelete, ephemeral.EventExpire:
		return s.add(ev.Cursor, ev.Kind.String(), goneMessage{ID: ev.Key, Reason: ev.Reason})
	}
	// A touch changes nothing the page shows (heartbeats are quiet touches anyway), but the
	// page's cursor moves on so that a reconnect does not replay it.
	s.buf = append(s.buf, "id: "+ev.Cursor+"\n\n"...)
	return nil
}

// sseWriter writes Server-Sent Events to one response.
type sseWriter struct {
	w        io.Writer
	rc       *http.ResponseController
	buf      []byte    // the messages to write
	last     time.Time // the time of the last write
	deadline time.Time // the write deadline set on the connection
}

// add adds to s.buf one event named event with id and v as JSON data.
func (s *sseWriter) add(id, event string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// Cursors, event names and JSON hold no newline, so each is one line. A message without an
	// id leaves the browser's last event id as it was.
	if id != "" {
		s.buf = append(s.buf, "id: "...)
		s.buf = append(s.buf, id...)
		s.buf = append(s.buf, '\n')
	}
	s.buf = append(s.buf, "event: "...)
	s.buf = append(s.buf, event...)
	s.buf = append(s.buf, "\ndata: "...)
	s.buf = append(s.buf, data...)
	s.buf = append(s.buf, "\n\n"...)
	return nil
}

// send writes one event named event with id and v as JSON data, and flushes it.
func (s *sseWriter) send(id, event string, v any) error {
	if err := s.add(id, event, v); err != nil {
		return err
	}
	return s.flush()
}

// write writes msg and flushes it.
func (s *sseWriter) write(msg string) error {
	s.buf = append(s.buf, msg...)
	return s.flush()
}

// flush writes s.buf and flushes it to the client. Every write has at least writeTimeout/2
// to finish: the connection's deadline moves on when less than that is left, not on every
// write, which would cost a timer update per event.
func (s *sseWriter) flush() error {
	s.last = time.Now()
	if s.deadline.Sub(s.last) < writeTimeout/2 {
		s.deadline = s.last.Add(writeTimeout)
		if err := s.rc.SetWriteDeadline(s.deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
	}
	_, err := s.w.Write(s.buf)
	s.buf = s.buf[:0]
	if err != nil {
		return err
	}
	return s.rc.Flush()
}

// logStreamEnd logs why a stream ended, unless the client went away or the server shut down.
func logStreamEnd(ctx context.Context, room string, err error) {
	if ctx.Err() == nil {
		log.Printf("presence: events of %s: %v", room, err)
	}
}
