package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
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
	// goneMessage ("delete" or "expire") is a member who left or whose page stopped beating.
	goneMessage struct {
		ID     string `json:"id"`
		Reason string `json:"reason,omitempty"`
	}
)

func viewOf(e *ephemeral.Entry[string, Member]) memberView {
	return memberView{ID: e.Key, Name: e.Value.Name, Status: e.Value.Status, JoinedAt: e.CreatedAt.UnixMilli()}
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
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	room, ok := roomParam(w, r)
	if !ok {
		return
	}
	done, ok := s.guard.openStream(r)
	if !ok {
		s.rejected.WithLabelValues(rejectStreams).Inc()
		http.Error(w, "too many event streams from your address", http.StatusTooManyRequests)
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
	if err := sse.write("retry: 2000\n\n"); err != nil {
		return
	}
	for {
		if rd == nil {
			var err error
			if rd, err = s.sendState(ctx, sse, room); err != nil {
				logStreamEnd(ctx, room, err)
				return
			}
		}
		err := s.forward(ctx, sse, rd)
		if !errors.Is(err, errResync) {
			logStreamEnd(ctx, room, err)
			return
		}
		rd.Close()
		rd = nil
	}
}

// sendState sends the room's snapshot and returns a reader of the changes after it.
func (s *server) sendState(ctx context.Context, sse *sseWriter, room string) (*ephemeral.Reader[string, Member], error) {
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
		msg.Members[i] = viewOf(&snap.Entries[i])
	}
	if err := sse.send(snap.Cursor, "state", msg); err != nil {
		rd.Close()
		return nil, err
	}
	return rd, nil
}

// forward sends the reader's events to the browser until the request ends (an error), the
// reader overflows (errResync) or a write fails. While the room is quiet it sends a comment every
// s.ping.
func (s *server) forward(ctx context.Context, sse *sseWriter, rd *ephemeral.Reader[string, Member]) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, s.ping)
		ev, err := rd.Recv(rctx)
		cancel()
		switch {
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			if err := sse.write(":\n\n"); err != nil {
				return err
			}
			continue
		case errors.Is(err, ephemeral.ErrDecode), errors.Is(err, ephemeral.ErrInvalidKey):
			log.Printf("presence: skip event: %v", err) // written by a foreign client
			continue
		case err != nil:
			return err
		}
		switch ev.Kind {
		case ephemeral.EventOverflow:
			return errResync
		case ephemeral.EventUpsert:
			err = sse.send(ev.Cursor, "upsert", viewOf(&ev.Entry))
		case ephemeral.EventDelete, ephemeral.EventExpire:
			err = sse.send(ev.Cursor, ev.Kind.String(), goneMessage{ID: ev.Key, Reason: ev.Reason})
		default:
			// A touch changes nothing the page shows (heartbeats are quiet touches anyway), but
			// the page's cursor moves on so that a reconnect does not replay it.
			err = sse.write("id: " + ev.Cursor + "\n\n")
		}
		if err != nil {
			return err
		}
	}
}

// sseWriter writes Server-Sent Events to one response, flushing each one.
type sseWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

// send writes one event named event with id and v as JSON data.
func (s *sseWriter) send(id, event string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// Cursors, event names and JSON hold no newline, so each is one line.
	return s.write(fmt.Sprintf("id: %s\nevent: %s\ndata: %s\n\n", id, event, data))
}

func (s *sseWriter) write(msg string) error {
	if err := s.rc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := io.WriteString(s.w, msg); err != nil {
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
