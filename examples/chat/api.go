package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wssafe/wssafe"
)

// signIn is the sign-in form, decoded strictly by decodeSignIn and
// validated with wssafe's field validators.
type signIn struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Validate applies the same rules as the socket's rename.
func (v signIn) Validate() error {
	if err := validName("name", v.Name); err != nil {
		return err
	}
	return wssafe.Email("email", v.Email)
}

// validName: 1 to 32 printable characters, no leading or trailing space.
func validName(field, name string) error {
	if err := wssafe.Length(field, name, 1, 32); err != nil {
		return err
	}
	if strings.TrimSpace(name) != name {
		return &wssafe.FieldError{Field: field, Rule: "trim", Message: "must not start or end with a space"}
	}
	return wssafe.Chars(field, name, unicode.IsPrint)
}

// tokenReply is what sign-in and refresh return to the page.
type tokenReply struct {
	Token     string `json:"token"`
	ExpiresIn int    `json:"expires_in"` // seconds
	Subject   string `json:"subject"`
	Name      string `json:"name"`
}

// login validates the form and issues a token for a fresh random subject.
// Nothing proves the email belongs to the one who typed it, so it must not
// name the identity: signing in with someone else's address gives a new
// user, never theirs. Its keyed fingerprint goes to the log with the new
// subject, so that an operator can link the subjects one address signed in
// as without the address itself reaching the logs or other users. It gates
// nothing: a per-email limit would let anyone lock a victim out by typing
// their address. Sign-ins are rate-limited per client address instead.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	if ok, retry := a.signIns.allow(a.clientKey(r)); !ok {
		skipBody(w, r)
		tooMany(w, retry)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		skipBody(w, r)
		writeError(w, http.StatusUnsupportedMediaType, &wssafe.MessageError{Code: "invalid_request", Message: "send JSON"})
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	form, err := decodeSignIn(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	email, _ := wssafe.EmailRule{}.Canonical("email", form.Email)
	subject := newSubject()
	a.log.Info("chat: signed in", "event", "signed_in", "subject", subject, "email_fp", a.ep.Fingerprint([]byte(email)))
	a.issue(w, subject, form.Name)
}

// decodeSignIn decodes the form as strictly as wssafe.JSON decodes the
// socket's messages: valid UTF-8, one JSON object whose members are the
// form's two strings, each spelled exactly and given once (encoding/json
// alone would match "NAME" to Name and let a second "name" win: two
// parsers could then disagree about who signed in), nothing after it;
// then the form's Validate. The body is small (maxBody), so a
// flat object needs no depth or size limits of its own.
func decodeSignIn(body []byte) (signIn, error) {
	var f signIn
	notForm := &wssafe.MessageError{Code: wssafe.CodeInvalidJSON, Message: "send one JSON object with a name and an email"}
	if !utf8.Valid(body) {
		return f, &wssafe.MessageError{Code: wssafe.CodeInvalidUTF8, Message: "request is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return f, notForm
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return f, notForm
		}
		key, _ := tok.(string)
		dst := map[string]*string{"name": &f.Name, "email": &f.Email}[key]
		if dst == nil {
			return f, &wssafe.MessageError{Code: wssafe.CodeUnknownField, Message: "request has a member that is not allowed"}
		}
		if seen[key] {
			return f, &wssafe.MessageError{Code: wssafe.CodeInvalidJSON, Message: "request has a duplicate member"}
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return f, notForm
		}
		if raw[0] != '"' || json.Unmarshal(raw, dst) != nil {
			return f, &wssafe.MessageError{Code: wssafe.CodeInvalidMessage, Field: key, Message: "must be a string"}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return f, notForm
	}
	if _, err := dec.Token(); err != io.EOF {
		return f, notForm
	}
	return f, f.Validate()
}

// newSubject returns a fresh subject: "u-" and 96 random bits in hex. Its
// first 8 hex digits are the tag the page shows after the name.
func newSubject() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "u-" + hex.EncodeToString(b)
}

// refresh re-issues a token for the holder of a valid one: the page calls
// it before expiry and hands the new token to the socket in-band. It is
// rate-limited per client address (before the token is even checked) and
// per subject.
func (a *app) refresh(w http.ResponseWriter, r *http.Request) {
	skipBody(w, r) // the token is in a header; a body has no use
	if ok, retry := a.refreshByAddr.allow(a.clientKey(r)); !ok {
		tooMany(w, retry)
		return
	}
	subject, name, err := a.tokens.verify(r)
	if err != nil {
		unauthorized(w)
		return
	}
	if ok, retry := a.refreshBySubject.allow(subject); !ok {
		tooMany(w, retry)
		return
	}
	a.issue(w, subject, name)
}

// unauthorized answers a request without a valid token.
func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	writeError(w, http.StatusUnauthorized, &wssafe.MessageError{Code: "invalid_token", Message: "sign in again"})
}

func (a *app) issue(w http.ResponseWriter, subject, name string) {
	tok, err := a.tokens.mint(subject, name)
	if err != nil {
		a.log.Error("chat: signing a token failed", "error", err)
		writeError(w, http.StatusInternalServerError, &wssafe.MessageError{Code: "internal", Message: "try again"})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, tokenReply{Token: tok, ExpiresIn: int(a.cfg.tokenTTL.Seconds()), Subject: subject, Name: name})
}

// maxBody is the largest API request body: a sign-in form is a few
// hundred bytes.
const maxBody = 4 << 10

// bodyTimeout bounds the time to receive an API request body, so that one
// that trickles in cannot hold the handler and its socket. It replaces the
// server's ReadTimeout deadline for the rest of the request, so it must not
// be longer than that; tests lower it.
var bodyTimeout = 5 * time.Second

// readBody reads at most maxBody bytes of the request body within
// bodyTimeout.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyTimeout))
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
}

// skipBody makes net/http close the connection as soon as the reply to r
// has been sent, instead of first reading what r's body announces: for a
// reply written without reading the body (a 429, a 415, a refresh, the
// page), net/http drains up to 256 KiB of it before it even sends the
// reply, for as long as a trickle lasts within ReadTimeout, holding the
// socket. A read deadline of now makes that drain fail at once, as wssafe
// does for its refusals. Without an announced body it does nothing, so
// keep-alive is untouched.
func skipBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		return
	}
	w.Header().Set("Connection", "close")
	http.NewResponseController(w).SetReadDeadline(time.Now())
}

// writeBodyError answers a body that could not be read: 413 over maxBody,
// 408 past bodyTimeout, 400 otherwise. net/http closes the connection
// after each, since the rest of the body is not read.
func writeBodyError(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, &wssafe.MessageError{Code: wssafe.CodeTooLarge, Message: "request too large"})
	case errors.As(err, &ne) && ne.Timeout():
		writeError(w, http.StatusRequestTimeout, &wssafe.MessageError{Code: "timeout", Message: "request body too slow"})
	default:
		writeError(w, http.StatusBadRequest, &wssafe.MessageError{Code: "invalid_request", Message: "unreadable request body"})
	}
}

// writeError answers with the same shape as the socket's error replies.
func writeError(w http.ResponseWriter, status int, err error) {
	reply := map[string]string{"type": "error", "code": "invalid_message", "message": "invalid request"}
	var me *wssafe.MessageError
	var fe *wssafe.FieldError
	switch {
	case errors.As(err, &fe):
		reply["field"], reply["message"] = fe.Field, fe.Message
	case errors.As(err, &me):
		reply["code"], reply["field"], reply["message"] = me.Code, me.Field, me.Message
	}
	writeJSON(w, status, reply)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
