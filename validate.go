package wssafe

// Validate and Validator, JSONLimits and the strict typed JSON decoder
// (JSON).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode/utf8"
)

// Codes of the error replies sent for invalid messages: the "code" member of
// {"type":"error","code":...}. They are stable; clients may switch on them.
const (
	// CodeInvalidMessage: a field or the message as a whole broke a rule;
	// "field" names the field when there is one.
	CodeInvalidMessage = "invalid_message"
	// CodeInvalidJSON: the message is not one well-formed JSON value
	// (syntax, duplicate keys, trailing data, null where a value is due).
	CodeInvalidJSON = "invalid_json"
	// CodeInvalidUTF8: a payload that must be text is not valid UTF-8.
	CodeInvalidUTF8 = "invalid_utf8"
	// CodeTooLarge: the message is over a size limit below the read limit.
	CodeTooLarge = "too_large"
	// CodeTooComplex: the JSON is nested too deeply, or has too many keys,
	// array items, or digits in a number.
	CodeTooComplex = "too_complex"
	// CodeUnknownField: the message has a member the typed message does not
	// declare. The member's name is not echoed.
	CodeUnknownField = "unknown_field"
	// CodeUnknownType: the envelope's "type" names no route.
	CodeUnknownType = "unknown_type"
	// CodeTampered: the message's signature is missing or does not match.
	CodeTampered = "tampered"
	// CodeReplayed: the same message was already received within the
	// de-duplication window.
	CodeReplayed = "replayed"
)

// A Validator checks a message before the callback sees it. It returns nil
// to let the message through. A [*MessageError] it returns is sent to the
// client as is; a [*FieldError] becomes an invalid_message reply naming the
// field; any other error becomes an invalid_message reply with a generic
// text (the error's own text is never sent or logged: it may quote the
// input). Validators must not retain m.Data.
type Validator func(m Message) error

// Validate returns a Middleware that runs vs in order and calls the next
// handler only when all of them accept the message. The first failure is
// answered with an error reply and counts against the session's
// invalid-message budget ([Options.InvalidMessages]); the session stays
// open until the budget is spent, then closes 1008. The failure is logged
// at Warn with event "invalid_message", the code, the field and the rule,
// never the value.
func Validate(vs ...Validator) Middleware {
	vs = append([]Validator(nil), vs...)
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, s *Session, m Message) error {
			for _, v := range vs {
				if err := v(m); err != nil {
					return asMessageError(err)
				}
			}
			return next.ServeMessage(ctx, s, m)
		})
	}
}

// invalidMessage returns the reply for err if it reports an invalid
// message (a MessageError or a FieldError), else nil.
func invalidMessage(err error) *MessageError {
	var me *MessageError
	var fe *FieldError
	if errors.As(err, &me) || errors.As(err, &fe) {
		return asMessageError(err)
	}
	return nil
}

// asMessageError turns a validation failure into the reply it deserves.
func asMessageError(err error) *MessageError {
	var me *MessageError
	if errors.As(err, &me) {
		return me
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return &MessageError{Code: CodeInvalidMessage, Field: fe.Field, Message: fe.Message, Rule: fe.Rule, Err: err}
	}
	return &MessageError{Code: CodeInvalidMessage, Message: "message failed validation", Rule: "validate", Err: err}
}

// MaxBytes returns a Validator that refuses messages longer than n bytes
// with a too_large reply. With types, only messages of those types are
// checked, so text and binary can have different limits:
//
//	wssafe.Validate(wssafe.MaxBytes(1<<10, wssafe.MessageText), wssafe.MaxBytes(16<<10, wssafe.MessageBinary))
//
// Unlike [Options.ReadLimit], which closes the session with 1009, an
// oversized message here is only answered: use it for limits that a
// well-behaved client can hit by mistake.
func MaxBytes(n int, types ...MessageType) Validator {
	var only [3]bool
	for _, t := range types {
		if t == MessageText || t == MessageBinary {
			only[t] = true
		}
	}
	all := len(types) == 0
	return func(m Message) error {
		if (all || only[m.Type]) && len(m.Data) > n {
			return &MessageError{Code: CodeTooLarge, Message: fmt.Sprintf("message is larger than %d bytes", n), Rule: "max_bytes"}
		}
		return nil
	}
}

// Defaults for [JSONLimits] fields left at zero.
const (
	DefaultJSONMaxDepth     = 32
	DefaultJSONMaxKeys      = 256
	DefaultJSONMaxItems     = 1024
	DefaultJSONMaxNumberLen = 64
)

// JSONLimits bounds the shape of a JSON message: [Options.JSONLimits] sets
// them for every message [JSON], a [Router] and [Integrity] decode. The
// limits are checked while the message is tokenized, before any structure
// is built, so a hostile message costs at most one pass over its bytes.
// Zero or negative fields mean the defaults; no limit can be switched off
// (set a large value instead). Duplicate keys are always refused.
type JSONLimits struct {
	// MaxDepth is the deepest nesting of objects and arrays. Zero means 32.
	MaxDepth int
	// MaxKeys is the most members one object may have. Zero means 256.
	MaxKeys int
	// MaxItems is the most elements one array may have. Zero means 1024.
	MaxItems int
	// MaxNumberLen is the longest number literal, in bytes, so that no
	// digit string of thousands of characters reaches a big-number parser.
	// Zero means 64.
	MaxNumberLen int
}

func (l JSONLimits) resolve() JSONLimits {
	positive := func(v, def int) int {
		if v <= 0 {
			return def
		}
		return v
	}
	return JSONLimits{
		MaxDepth:     positive(l.MaxDepth, DefaultJSONMaxDepth),
		MaxKeys:      positive(l.MaxKeys, DefaultJSONMaxKeys),
		MaxItems:     positive(l.MaxItems, DefaultJSONMaxItems),
		MaxNumberLen: positive(l.MaxNumberLen, DefaultJSONMaxNumberLen),
	}
}

// jsonLimits returns the limits in force for s: its endpoint's
// Options.JSONLimits, resolved at New, or the defaults without a session
// (a handler called directly, as in a unit test).
func jsonLimits(s *Session) JSONLimits {
	if s == nil {
		return JSONLimits{}.resolve()
	}
	return s.ep.cfg.JSONLimits
}

func jsonError(rule, msg string) *MessageError {
	return &MessageError{Code: CodeInvalidJSON, Message: msg, Rule: rule}
}

func tooComplex(rule, msg string) *MessageError {
	return &MessageError{Code: CodeTooComplex, Message: msg, Rule: rule}
}

// selfValidator is implemented by typed messages that check themselves.
type selfValidator interface{ Validate() error }

// JSON returns a Handler that decodes each message into a T and calls fn
// with it, so fn only ever sees a T that passed every check:
//   - the message is one JSON value in valid UTF-8 within
//     [Options.JSONLimits], with no duplicate keys, not even ones that
//     differ only in case (encoding/json matches field names
//     case-insensitively, so {"admin":false,"Admin":true} would otherwise
//     let the last one win; parsers that disagree on which duplicate wins
//     are a classic way to smuggle a value past a check);
//   - no member that T does not declare (unknown_field), no value of the
//     wrong type, no trailing data, not null;
//   - then, if T (or *T) has a method Validate() error, it is called; its
//     [*MessageError] or [*FieldError] becomes the reply, any other error a
//     generic invalid_message reply.
//
// A message that fails is answered with an error reply (see [Validate])
// and fn is not called. JSON[json.RawMessage] checks a message without
// decoding it into a type.
//
//	type Join struct {
//		Room string `json:"room"`
//	}
//
//	func (j Join) Validate() error { return wssafe.Length("room", j.Room, 1, 64) }
//
//	h := wssafe.JSON(func(ctx context.Context, s *wssafe.Session, j Join) error { ... })
func JSON[T any](fn func(ctx context.Context, s *Session, v T) error) Handler {
	return HandlerFunc(func(ctx context.Context, s *Session, m Message) error {
		v, err := decodeJSON[T](m.Data, jsonLimits(s))
		if err != nil {
			return err
		}
		return fn(ctx, s, v)
	})
}

// decodeJSON decodes data into a T under l, which is resolved, as [JSON]
// describes. Every error it returns is a *MessageError.
func decodeJSON[T any](data []byte, l JSONLimits) (T, error) {
	var v T
	w := getJSONWork()
	if me := w.check(data, l, true); me != nil {
		w.put()
		return v, me
	}
	return decodeValidated(w, data, &v)
}

// decodeStrict decodes data, which scanJSON has accepted, into a T and runs
// its Validate method.
func decodeStrict[T any](data []byte) (T, error) {
	var v T
	return decodeValidated(getJSONWork(), data, &v)
}

// decodeValidated decodes data into *v with w, puts w back, and runs T's
// Validate method.
func decodeValidated[T any](w *jsonWork, data []byte, v *T) (T, error) {
	var me *MessageError
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		me = jsonError("null", "message must not be null")
	} else {
		me = w.decode(data, v)
	}
	w.put()
	if me != nil {
		return *v, me
	}
	if err := selfValidate(v); err != nil {
		return *v, asMessageError(err)
	}
	return *v, nil
}

// decode decodes the one JSON value in data into v, refusing unknown
// members, with w's json.Decoder.
//
// A json.Decoder reads successive values from a stream, and its stream may
// pause: a Read that reports io.EOF does not end it. So one Decoder serves
// message after message, each fed to it once the previous one is consumed,
// which saves allocating a Decoder and its buffer per message (a third of
// the cost of decoding a small message). A Decoder is kept only when all
// that its message held after the value is whitespace (which the next
// value may follow), and it is not in an error state: after a type or
// unknown-member error encoding/json keeps a Decoder usable, the value
// having been read whole.
func (w *jsonWork) decode(data []byte, v any) *MessageError {
	sd, reused := w.dec, true
	if sd == nil || len(data) > maxPooledDecode {
		sd, reused = newStrictDecoder(), false
	}
	sd.feed.p = data
	err := sd.dec.Decode(v)
	if err == io.EOF && reused {
		// Not at the end of the stream: a Decoder that holds on to an
		// io.EOF (not encoding/json's today). Decode afresh.
		sd = newStrictDecoder()
		sd.feed.p = data
		err = sd.dec.Decode(v)
	}
	// What follows the value: the bytes the Decoder has read past it and
	// those it has not read yet.
	after := int64(len(sd.feed.p)) + sd.feed.read - sd.dec.InputOffset()
	clean := after >= 0 && after <= int64(len(data)) && isJSONSpaceOnly(data[len(data)-int(after):])
	sd.feed.p = nil
	if len(data) <= maxPooledDecode {
		w.dec = nil
		if clean && !isSyntaxError(err) {
			w.dec = sd
		}
	}
	if err != nil {
		return decodeError(err)
	}
	if !clean {
		return jsonError("trailing_data", "message has data after the JSON value")
	}
	return nil
}

func isJSONSpaceOnly(p []byte) bool {
	for _, c := range p {
		if !isJSONSpace(c) {
			return false
		}
	}
	return true
}

// Messages longer than this are decoded by a Decoder of their own, so that
// no pooled Decoder keeps a large buffer.
const maxPooledDecode = 8 << 10

// strictDecoder is a json.Decoder that refuses unknown members and reads
// from feed, which holds the message being decoded.
type strictDecoder struct {
	dec  *json.Decoder
	feed feed
}

func newStrictDecoder() *strictDecoder {
	sd := new(strictDecoder)
	sd.dec = json.NewDecoder(&sd.feed)
	sd.dec.DisallowUnknownFields()
	return sd
}

// feed hands its bytes to the first Reads, then reports io.EOF until it
// is given more.
type feed struct {
	p    []byte
	read int64 // bytes handed out, over all messages
}

func (f *feed) Read(b []byte) (int, error) {
	if len(f.p) == 0 {
		return 0, io.EOF
	}
	n := copy(b, f.p)
	f.p = f.p[n:]
	f.read += int64(n)
	return n, nil
}

func isSyntaxError(err error) bool {
	if err == nil {
		return false
	}
	var se *json.SyntaxError
	return errors.As(err, &se) || err == io.ErrUnexpectedEOF || err == io.EOF
}

// selfValidate calls T's Validate method, through *T first: that one has
// T's value methods too, and converting it to an interface does not copy
// T to the heap. Only a pointer or interface T can have a Validate that *T
// lacks.
func selfValidate[T any](v *T) error {
	if sv, ok := any(v).(selfValidator); ok {
		return sv.Validate()
	}
	if k := reflect.TypeFor[T]().Kind(); k != reflect.Pointer && k != reflect.Interface {
		return nil
	}
	if sv, ok := any(*v).(selfValidator); ok {
		return sv.Validate()
	}
	return nil
}

// decodeError describes a decoding failure without quoting the input: an
// unknown member's name is the client's and is not echoed.
func decodeError(err error) *MessageError {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return &MessageError{Code: CodeInvalidMessage, Field: fieldName(ute.Field), Message: "has the wrong type", Rule: "type"}
	}
	if strings.HasPrefix(err.Error(), "json: unknown field ") {
		return &MessageError{Code: CodeUnknownField, Message: "message has a member that is not allowed", Rule: "unknown_field"}
	}
	return &MessageError{Code: CodeInvalidMessage, Message: "message could not be decoded", Rule: "decode"}
}

// fieldName bounds a field path for replies and logs: map keys in a path
// come from the client.
func fieldName(f string) string {
	const max = 64
	if len(f) <= max {
		return f
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(f[i]) {
			return f[:i]
		}
	}
	return ""
}
