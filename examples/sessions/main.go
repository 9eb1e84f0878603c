// Sessions shows sliding-expiry login sessions on an ephemeral store. It plays a short scenario
// on the memory backend and exits by itself after about two seconds:
//
//	go run ./examples/sessions
//
// What it shows:
//
//   - Login creates a session with a conditional write, IfNew: a session ID that is already
//     live is refused with ErrConflict instead of being overwritten, so a collision of two
//     random IDs never hands one user's session to another. (It does not stop an ID chosen by
//     a client: one that is not live is taken. The server makes every ID, see below.)
//   - Every request touches its session, quietly (no event, no new version): the expiry slides
//     forward by the TTL (500 ms here, thirty minutes in a real application), so a user who
//     keeps working stays logged in.
//   - Logout is a Remove with a reason.
//   - A session nobody uses expires. A reader, started before anything happens, logs every
//     login, logout and expiry as it happens: the place for an audit log, or for cleaning up
//     what a session held. A reader that falls behind the store's event retention gets an
//     overflow event instead of the events it missed: the log says so, and a real application
//     would take a snapshot then (or keep a Mirror, which does it).
//   - A request with an expired session finds nothing to touch: the user logs in again.
//
// The SessionStore is generated: session.go carries the //ephemeral:store directive, and
// go generate ./examples/sessions writes session_ephemeral.go. Session IDs are short names
// here to keep the output readable.
//
// In a real application:
//
//   - The server makes every session ID, 128 bits or more from crypto/rand (rand.Text), at
//     every login and when the user's privileges change, and never takes one from a client.
//   - The ID is a bearer secret: it shows in errors (a ConflictError names its key), in every
//     reader's events and in Redis. Store a hash of it as the key (sha256 of the cookie's
//     value), so that none of those is a session.
//   - The cookie is HttpOnly, Secure and SameSite=Lax (or Strict), is cleared at logout, and
//     forms carry a CSRF token or the server checks the origin (net/http's
//     CrossOriginProtection).
//   - A sliding expiry keeps a busy session, a stolen one too, alive for ever: also end
//     sessions at an absolute age (CreatedAt plus, say, twelve hours), and clamp any TTL a
//     user may choose ("remember me").
//   - All sessions share one tenant, of at most Limits.MaxEntries live entries (10,000 by
//     default): set it to the users you expect and limit the rate of logins, or a flood of
//     logins fills it and the next login fails with ErrCapacity. A key of user and session
//     (key=UserID,SessionID) allows a limit per user and "log out everywhere" by prefix.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

func main() {
	backend := memstore.New()
	defer backend.Close()
	store, err := NewSessionStore(backend)
	if err != nil {
		log.Fatal(err)
	}
	if err := run(context.Background(), store, os.Stdout, time.Sleep); err != nil {
		log.Fatal(err)
	}
}

// run plays the scenario on store and writes what happens to out. It waits with sleep:
// time.Sleep, or in tests the Advance of the backend's fake clock.
func run(ctx context.Context, store *SessionStore, out io.Writer, sleep func(time.Duration)) (err error) {
	logger := log.New(out, "", 0) // safe for the reader's goroutine and this one
	r, err := store.Reader(ctx)
	if err != nil {
		return err
	}
	ended := make(chan string, 8) // sessions the reader saw end; room for all of the scenario's
	watched := make(chan error, 1)
	go func() { watched <- watch(ctx, r, logger, ended) }()
	defer func() {
		r.Close()
		err = errors.Join(err, <-watched)
	}()

	for _, user := range []string{"ada", "bob", "carol"} {
		e, err := store.Upsert(ctx, "s-"+user, Session{UserID: user, Roles: []string{"member"}}, ephemeral.IfNew())
		if err != nil {
			return fmt.Errorf("login %s: %w", user, err)
		}
		logger.Printf("%s  %s logs in: session %s, expires at %s", clock(e.UpdatedAt), user, e.Key, clock(e.ExpiresAt))
	}
	// A live session ID is never overwritten.
	_, err = store.Upsert(ctx, "s-ada", Session{UserID: "mallory"}, ephemeral.IfNew())
	if !errors.Is(err, ephemeral.ErrConflict) {
		return fmt.Errorf("login with a live session id: %v, want ErrConflict", err)
	}
	logger.Printf("              mallory logs in with session s-ada: refused (%v)", err)

	if _, err := store.Remove(ctx, "s-carol", ephemeral.WithReason("logout")); err != nil {
		return err
	}

	// Ada works for a while; every request slides her session's expiry. Bob does nothing.
	ttl := store.DefaultTTL()
	for i := 1; i <= 5; i++ {
		sleep(ttl * 2 / 5)
		res, err := store.Touch(ctx, "s-ada", ephemeral.Quiet())
		if err != nil {
			return err
		}
		if !res.OK {
			return errors.New("ada's session expired while she was working")
		}
		logger.Printf("              ada's request %d: session s-ada now expires at %s", i, clock(res.ExpiresAt))
	}

	// Ada takes a break longer than the TTL.
	sleep(ttl)
	if err := waitEnded(ctx, ended, "s-ada"); err != nil {
		return err
	}
	res, err := store.Touch(ctx, "s-ada")
	if err != nil {
		return err
	}
	if res.OK {
		return errors.New("ada's session outlived its TTL")
	}
	logger.Printf("              ada's next request: session s-ada is gone, please log in again")
	return nil
}

// watch logs the store's events until the reader is closed, and sends the key of every
// session that ended on ended.
func watch(ctx context.Context, r *ephemeral.Reader[string, Session], logger *log.Logger, ended chan<- string) error {
	for ev, err := range r.Events(ctx) {
		if errors.Is(err, ephemeral.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		switch ev.Kind {
		case ephemeral.EventUpsert:
			logger.Printf("%s  reader: session %s of %s created", clock(ev.At), ev.Key, ev.Value.UserID)
		case ephemeral.EventDelete:
			logger.Printf("%s  reader: session %s deleted (%s)", clock(ev.At), ev.Key, ev.Reason)
			ended <- ev.Key
		case ephemeral.EventExpire:
			logger.Printf("%s  reader: session %s expired", clock(ev.At), ev.Key)
			ended <- ev.Key
		case ephemeral.EventOverflow:
			// The events between the reader's cursor and the first the store still has are
			// gone: an audit log has a gap here, and what it tracks has to be read again.
			logger.Printf("              reader: events after %s are lost (the reader fell behind); re-read the sessions", ev.After)
		}
		// The requests' touches are quiet: they make no events.
	}
	return nil
}

// waitEnded waits until the reader reports that session id ended.
func waitEnded(ctx context.Context, ended <-chan string, id string) error {
	for {
		select {
		case key := <-ended:
			if key == id {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// clock formats a time of the store as a time of day with milliseconds.
func clock(t time.Time) string { return t.UTC().Format("15:04:05.000") }
