package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ephemeral-go/ephemeral"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	maxNameRunes = 32      // longest visitor name
	maxFormBytes = 1 << 10 // largest form a page posts
	defaultRoom  = "lobby" // where / leads
	// bodyTimeout bounds the reading of a request's body, so that a client that sends it a
	// byte at a time does not hold a connection and a goroutine.
	bodyTimeout = 5 * time.Second
	// pingEvery is how long an event stream may be silent before the server sends a comment,
	// which keeps idle connections open through proxies.
	pingEvery = 20 * time.Second
	// renewTokenLife is how long a renewal token lets a page open its event stream (see
	// renewToken).
	renewTokenLife = 5 * time.Minute
)

// roomPattern is what a room name looks like: it is a tenant and part of every URL of the room.
var roomPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,39}$`)

//go:embed static
var staticFiles embed.FS

var pageTemplate = template.Must(template.ParseFS(staticFiles, "static/room.html"))

// staticNames are the files of static/ that are served as they are; the page template is not.
var staticNames = map[string]bool{"app.js": true, "style.css": true}

// server serves the presence pages and their APIs. Each room is a tenant of one member store.
type server struct {
	store     *MemberStore
	heartbeat time.Duration // how often a stream renews its member, or a page whose stream is down
	secret    []byte        // signs member tokens
	ping      time.Duration // how long an event stream may be silent
	// now is the clock of renewal tokens (see renewToken).
	now func() time.Time
	// bodyTimeout bounds the reading of a request's body.
	bodyTimeout time.Duration
	guard       *guard // per-client limits
	renewals    *renewals
	handler     http.Handler
	// allowHost reports whether the server answers requests for a Host name (see hostFilter);
	// nil answers any.
	allowHost func(host string) bool
	// rejected counts the requests refused by a limit, by reason (see rejections).
	rejected *prometheus.CounterVec
}

// The reasons of presence_rejections_total: the limits that refuse requests.
const (
	rejectConns      = "conns"       // too many connections open from a client address (closed)
	rejectHost       = "host"        // a Host name the server does not answer for (421)
	rejectJoinRate   = "join_rate"   // too many joins from a client address (429)
	rejectStreams    = "streams"     // too many event streams open from a client address (429)
	rejectStreamRate = "stream_rate" // too many event streams opened from a client address of late (429)
	rejectWriteRate  = "write_rate"  // too many heartbeats, status changes and leaves from a client address (429)
	rejectRoomFull   = "room_full"   // the room has -room-size members (503)
	rejectTooLarge   = "too_large"   // a form over maxFormBytes (413)
	rejectSlowBody   = "slow_body"   // a form not read within the body timeout (408)
)

var rejections = []string{rejectConns, rejectHost, rejectJoinRate, rejectStreams, rejectStreamRate, rejectWriteRate, rejectRoomFull, rejectTooLarge, rejectSlowBody}

// newServer returns the presence app on store, whose members live for ttl without a renewal,
// with the per-client limits l.
func newServer(store *MemberStore, ttl time.Duration, l Limits) *server {
	s := &server{
		store:     store,
		heartbeat: ttl / 3,
		ping:      pingEvery,
		secret:    make([]byte, 32),
		now:       time.Now,
		guard:     newGuard(l),

		bodyTimeout: bodyTimeout,
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presence_rejections_total",
			Help: "Requests refused by a limit of the presence server, by reason.",
		}, []string{"reason"}),
	}
	for _, reason := range rejections {
		s.rejected.WithLabelValues(reason) // exported at 0 from the start
	}
	s.renewals = newRenewals(s)
	_, _ = rand.Read(s.secret) // crypto/rand.Read never fails
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/{file}", serveStatic)
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("GET /rooms/{room}", s.page)
	mux.HandleFunc("GET /rooms/{room}/events", s.events)
	mux.HandleFunc("POST /rooms/{room}/join", s.join)
	mux.HandleFunc("POST /rooms/{room}/heartbeat", s.heartbeatMember)
	mux.HandleFunc("POST /rooms/{room}/status", s.setStatus)
	mux.HandleFunc("POST /rooms/{room}/leave", s.leave)
	s.handler = http.NewCrossOriginProtection().Handler(mux)
	return s
}

// listen readies the server for ln: it answers the Host names that hosts (the -hosts flag)
// and ln's address allow (see hostFilter), and it returns ln with the connections of a client
// limited to those of the server's Limits: the others are closed as soon as they are
// accepted, and counted (rejectConns).
func (s *server) listen(ln net.Listener, hosts string) (net.Listener, error) {
	allow, err := hostFilter(hosts, ln.Addr())
	if err != nil {
		return nil, err
	}
	s.allowHost = allow
	return limitConns(ln, s.guard.limits.Conns, func() { s.rejected.WithLabelValues(rejectConns).Inc() }), nil
}

// ServeHTTP serves the pages, their event streams and their API, for the Host names the
// server answers for (see hostFilter; others get 421 Misdirected Request). Writes from other
// origins are refused (CSRF); every response forbids framing, inline scripts and styles and
// content from elsewhere, and content-type sniffing.
//
// The body of any request must arrive within the body timeout, whether its handler reads it
// or not: after a handler that did not read it (a 404, a page fetched with a body), net/http
// reads what is left of it, up to 256 KB, before it writes the answer, and a client that sent
// it a byte at a time would hold the connection and its goroutine for ever. Past the timeout
// the answer goes out and the connection is closed. Requests without a body, event streams
// among them, get no read deadline.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 { // -1: chunked, of unknown length
		// An error is ErrNotSupported: no connection to time out.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.bodyTimeout))
	}
	if s.allowHost != nil && !s.allowHost(r.Host) {
		s.rejected.WithLabelValues(rejectHost).Inc()
		http.Error(w, "this server does not answer for that host name (see its -hosts flag)", http.StatusMisdirectedRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	s.handler.ServeHTTP(w, r)
}

// serveStatic serves the page's script and style sheet; anything else of static/, such as the
// page template or a directory listing, is not found.
func serveStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if !staticNames[name] {
		http.NotFound(w, r)
		return
	}
	http.ServeFileFS(w, r, staticFiles, "static/"+name)
}

// home sends a visitor to the room named by ?room=, or to the default room. The room comes
// from the URL's query alone: r.FormValue would also read a multipart body, even a GET's (up
// to 32 MB in memory, file parts beyond that to disk).
func (s *server) home(w http.ResponseWriter, r *http.Request) {
	room := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("room")))
	if !roomPattern.MatchString(room) {
		room = defaultRoom
	}
	http.Redirect(w, r, "/rooms/"+room, http.StatusSeeOther)
}

// roomParam returns the room of the request's path, or writes a 404 and returns false.
func roomParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	room := r.PathValue("room")
	if !roomPattern.MatchString(room) {
		http.Error(w, "no such room: a room name is 1 to 40 of a-z, 0-9, - and _", http.StatusNotFound)
		return "", false
	}
	return room, true
}

// page serves the page of a room.
func (s *server) page(w http.ResponseWriter, r *http.Request) {
	room, ok := roomParam(w, r)
	if !ok {
		return
	}
	// The page's member id, fixed before it joins, so that its event stream can keep the
	// member alive once it has (see events), with the renewal token.
	id := newID()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // the id and tokens are the page's own
	err := pageTemplate.Execute(w, struct {
		Room, ID, Token, Renew string
		HeartbeatMS            int64
	}{room, id, s.token(room, id), s.renewToken(room, id, s.renewExpiry()), s.heartbeat.Milliseconds()})
	if err != nil {
		log.Printf("presence: render %s: %v", room, err)
	}
}

// joined is the answer to a join: who the page is and how to stay.
type joined struct {
	ID    string `json:"id"`
	Token string `json:"token"`
	// Renew is the renewal token, for the URL of the page's event stream (see renewToken).
	Renew       string `json:"renew"`
	HeartbeatMS int64  `json:"heartbeatMs"`
}

// join adds a member to the room. A page that lost its member (it expired while the tab slept)
// joins again with its old id and token and keeps its identity.
func (s *server) join(w http.ResponseWriter, r *http.Request) {
	room, ok := roomParam(w, r)
	if !ok || !s.readForm(w, r) {
		return
	}
	name, err := cleanName(r.PostFormValue("name"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !s.guard.allowJoin(r) {
		s.tooMany(w, rejectJoinRate, "2", "too many joins from your address; wait a moment")
		return
	}
	status := Status(r.PostFormValue("status"))
	if !status.valid() {
		status = StatusActive
	}
	id, token := r.PostFormValue("id"), r.PostFormValue("token")
	if id == "" || !s.validToken(room, id, token) {
		id = newID()
		token = s.token(room, id)
	}
	m := Member{ID: id, Name: name, Status: status}
	_, err = s.store.Upsert(r.Context(), id, m, ephemeral.WithTenant(room), ephemeral.IfNew())
	switch {
	case errors.Is(err, ephemeral.ErrConflict):
		http.Error(w, "already joined", http.StatusConflict)
		return
	case errors.Is(err, ephemeral.ErrCapacity):
		s.rejected.WithLabelValues(rejectRoomFull).Inc()
		http.Error(w, "the room is full", http.StatusServiceUnavailable)
		return
	case err != nil:
		serverError(w, "join", err)
		return
	}
	writeJSON(w, joined{ID: id, Token: token, Renew: s.renewToken(room, id, s.renewExpiry()), HeartbeatMS: s.heartbeat.Milliseconds()})
}

// heartbeatMember keeps the member alive with a quiet touch. 410 Gone tells the page that its
// member expired and that it should join again. A page beats only while its event stream is
// down: the stream renews its member (see events).
func (s *server) heartbeatMember(w http.ResponseWriter, r *http.Request) {
	room, id, ok := s.member(w, r)
	if !ok || !s.allowWrite(w, r) {
		return
	}
	res, err := s.store.Touch(r.Context(), id, ephemeral.WithTenant(room), ephemeral.Quiet())
	if err != nil {
		serverError(w, "heartbeat", err)
		return
	}
	if !res.OK {
		http.Error(w, "not in the room", http.StatusGone)
		return
	}
	// A fresh renewal token, for a page whose stream was down for longer than its last lived.
	writeJSON(w, renewed{Renew: s.renewToken(room, id, s.renewExpiry())})
}

// renewed is the answer to a heartbeat, and the data of a stream's "renew" message: a fresh
// renewal token of the page's member (see renewToken).
type renewed struct {
	Renew string `json:"renew"`
}

// setStatus changes the member's status; everyone in the room sees it.
func (s *server) setStatus(w http.ResponseWriter, r *http.Request) {
	room, id, ok := s.member(w, r)
	if !ok {
		return
	}
	status := Status(r.PostFormValue("status"))
	if !status.valid() {
		http.Error(w, "status must be active or away", http.StatusBadRequest)
		return
	}
	if !s.allowWrite(w, r) {
		return
	}
	// Read, modify, write back if nobody wrote in between: the name stays as it is.
	e, ok, err := s.store.Get(r.Context(), id, ephemeral.WithTenant(room))
	if err == nil && ok {
		e.Value.Status = status
		_, err = s.store.Upsert(r.Context(), id, e.Value, ephemeral.WithTenant(room), ephemeral.IfVersion(e.Version))
	}
	switch {
	case errors.Is(err, ephemeral.ErrConflict):
		http.Error(w, "the member changed meanwhile; send the status again", http.StatusConflict)
	case err != nil:
		serverError(w, "status", err)
	case !ok:
		http.Error(w, "not in the room", http.StatusGone)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// leave removes the member; the page calls it with navigator.sendBeacon when it goes away. A
// leave counts against the client's writes: each is a store call, and an event to every page
// of the room, and the room's page hands out member ids and their tokens to anyone.
func (s *server) leave(w http.ResponseWriter, r *http.Request) {
	room, id, ok := s.member(w, r)
	if !ok || !s.allowWrite(w, r) {
		return
	}
	if _, err := s.store.Remove(r.Context(), id, ephemeral.WithTenant(room), ephemeral.WithReason("left")); err != nil {
		serverError(w, "leave", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// allowWrite reports whether the request's client may send a heartbeat, a status change or a
// leave now, or writes the 429 and returns false.
func (s *server) allowWrite(w http.ResponseWriter, r *http.Request) bool {
	if s.guard.allowWrite(r) {
		return true
	}
	s.tooMany(w, rejectWriteRate, "1", "too many heartbeats, status changes and leaves from your address; wait a moment")
	return false
}

// tooMany answers a request that a rate limit refused, for reason: 429 with msg, and when to
// try again (Retry-After, in seconds).
func (s *server) tooMany(w http.ResponseWriter, reason, retryAfter, msg string) {
	s.rejected.WithLabelValues(reason).Inc()
	w.Header().Set("Retry-After", retryAfter)
	http.Error(w, msg, http.StatusTooManyRequests)
}

// member returns the room and the member id of a request that proves, with its token, to be
// that member's page.
func (s *server) member(w http.ResponseWriter, r *http.Request) (room, id string, ok bool) {
	room, ok = roomParam(w, r)
	if !ok || !s.readForm(w, r) {
		return "", "", false
	}
	id = r.PostFormValue("id")
	if !s.validToken(room, id, r.PostFormValue("token")) {
		http.Error(w, "bad member token", http.StatusForbidden)
		return "", "", false
	}
	return room, id, true
}

// readForm reads the request's form, of at most maxFormBytes within the body timeout, or writes
// the error (413, 408 or 400) and returns false.
func (s *server) readForm(w http.ResponseWriter, r *http.Request) bool {
	if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.bodyTimeout)); err != nil {
		serverError(w, "read deadline", err)
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	err := r.ParseForm()
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case err == nil:
		return true
	case errors.As(err, &tooLarge):
		s.rejected.WithLabelValues(rejectTooLarge).Inc()
		http.Error(w, fmt.Sprintf("request body too large: at most %d bytes", maxFormBytes), http.StatusRequestEntityTooLarge)
	case errors.As(err, &netErr) && netErr.Timeout():
		s.rejected.WithLabelValues(rejectSlowBody).Inc()
		w.Header().Set("Connection", "close")
		http.Error(w, "request body too slow", http.StatusRequestTimeout)
	default:
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
	}
	return false
}

// token returns the secret that proves a page owns member id of room. Member ids are public
// (everyone in the room sees them); tokens are only given to the page that joined.
func (s *server) token(room, id string) string { return s.sign("", room, id, 0) }

// renewToken returns the secret that lets the event stream of a page keep its member, id of
// room, alive. It is in the stream's URL, which ends up in access logs, browser histories and
// Referer headers, so it can do nothing else: joining as the member, its heartbeats, status
// changes and leave take the member's token, which is signed in another domain, so that
// neither token can be made from the other.
//
// A renewal token expires: it is "<expiry>.<HMAC>", the expiry in Unix seconds, renewTokenLife
// after it was made, and the HMAC signs it too. A URL copied from a log lets its reader open
// the member's stream only until then, so a page that crashed does not live on as a ghost for
// whoever finds it. The page never holds a stale one: an open stream sends its page a fresh
// token once half of its own is spent (see forward), and a heartbeat answers with one, for a
// page whose stream was down for longer than a token lives. A stream, once open, renews its
// member until it ends, whatever its token's age: whoever holds a stream gets its fresh tokens
// anyway.
func (s *server) renewToken(room, id string, exp int64) string {
	return strconv.FormatInt(exp, 10) + "." + s.sign(renewDomain, room, id, exp)
}

// renewExpiry returns the expiry of a renewal token made now (see renewToken).
func (s *server) renewExpiry() int64 { return s.now().Add(renewTokenLife).Unix() }

// renewDomain is the domain of renewal tokens (see sign).
const renewDomain = "renew"

// sign returns the HMAC under the server's secret of room and id in domain, and of the token's
// expiry exp in a domain that is not the member tokens'. A member token's domain is empty and
// its message starts with the room's first byte (a letter or a digit, as roomPattern has it);
// every other's starts with a zero byte and the domain's name, so no message of one domain is
// one of another, and ends with a zero byte and exp in 8 bytes, so that the room (which has no
// zero byte) and the id are where the message says.
func (s *server) sign(domain, room, id string, exp int64) string {
	mac := hmac.New(sha256.New, s.secret)
	if domain != "" {
		mac.Write([]byte{0})
		mac.Write([]byte(domain))
		mac.Write([]byte{0})
	}
	mac.Write([]byte(room))
	mac.Write([]byte{0})
	mac.Write([]byte(id))
	if domain != "" {
		mac.Write(binary.BigEndian.AppendUint64([]byte{0}, uint64(exp)))
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:18])
}

// validToken reports whether token is the member token of id in room.
func (s *server) validToken(room, id, token string) bool {
	return validID(id) && hmac.Equal([]byte(token), []byte(s.sign("", room, id, 0)))
}

// validRenewToken reports whether token is a renewal token of id in room that has not expired,
// and returns its expiry.
func (s *server) validRenewToken(room, id, token string) (exp int64, ok bool) {
	expText, mac, found := strings.Cut(token, ".")
	exp, err := strconv.ParseInt(expText, 10, 64)
	if !found || err != nil || !validID(id) || !hmac.Equal([]byte(mac), []byte(s.sign(renewDomain, room, id, exp))) {
		return 0, false
	}
	return exp, s.now().Unix() < exp
}

// validID reports whether id may be a member id: a key of the store.
func validID(id string) bool { return id != "" && len(id) <= ephemeral.MaxKeyBytes }

// newID returns a fresh member id.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// cleanName trims a visitor's name and checks that it is 1 to maxNameRunes printable
// characters.
func cleanName(name string) (string, error) {
	name = strings.TrimSpace(name)
	n := utf8.RuneCountInString(name)
	switch {
	case !utf8.ValidString(name):
		return "", errors.New("the name is not valid UTF-8")
	case n == 0:
		return "", errors.New("pick a name")
	case n > maxNameRunes:
		return "", fmt.Errorf("a name has at most %d characters", maxNameRunes)
	}
	for _, c := range name {
		if !unicode.IsPrint(c) {
			return "", fmt.Errorf("the name contains the unprintable character %U", c)
		}
	}
	return name, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		log.Printf("presence: write response: %v", err)
	}
}

func serverError(w http.ResponseWriter, op string, err error) {
	if errors.Is(err, context.Canceled) {
		return // the client went away
	}
	log.Printf("presence: %s: %v", op, err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}
