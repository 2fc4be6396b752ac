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
	"strings"
	"unicode"
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

// jsonFrame is one open object or array during a scan.
type jsonFrame struct {
	object  bool
	wantKey bool // in an object: the next string token is a key
	n       int  // members or elements so far
	keys    map[string]struct{}
}

// jsonScan tokenizes a message with encoding/json's Decoder.Token and
// enforces the limits token by token.
type jsonScan struct {
	l     JSONLimits
	fold  bool // compare keys as encoding/json matches struct fields
	stack []jsonFrame
}

// scanJSON checks data against l and returns the reply for the first
// violation, or nil. With fold, keys that differ only in case count as
// duplicates: encoding/json matches them to the same struct field.
func scanJSON(data []byte, l JSONLimits, fold bool) *MessageError {
	if !utf8.Valid(data) {
		return &MessageError{Code: CodeInvalidUTF8, Message: "message is not valid UTF-8", Rule: "utf8"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	sc := &jsonScan{l: l, fold: fold}
	for {
		tok, err := dec.Token()
		if err != nil {
			if err == io.EOF && len(sc.stack) == 0 {
				return jsonError("empty", "message is empty")
			}
			return jsonError("syntax", "message is not valid JSON")
		}
		if me := sc.token(tok); me != nil {
			return me
		}
		if len(sc.stack) == 0 {
			break
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return jsonError("trailing_data", "message has data after the JSON value")
	}
	return nil
}

func (sc *jsonScan) token(tok json.Token) *MessageError {
	switch t := tok.(type) {
	case json.Delim:
		if t == '}' || t == ']' {
			sc.stack = sc.stack[:len(sc.stack)-1]
			return nil
		}
		if me := sc.value(); me != nil {
			return me
		}
		if len(sc.stack) >= sc.l.MaxDepth {
			return tooComplex("max_depth", fmt.Sprintf("message nests deeper than %d levels", sc.l.MaxDepth))
		}
		sc.stack = append(sc.stack, jsonFrame{object: t == '{', wantKey: t == '{'})
		return nil
	case string:
		if top := sc.top(); top != nil && top.wantKey {
			return sc.key(top, t)
		}
	case json.Number:
		if len(t) > sc.l.MaxNumberLen {
			return tooComplex("max_number_len", fmt.Sprintf("number is longer than %d characters", sc.l.MaxNumberLen))
		}
	}
	return sc.value()
}

func (sc *jsonScan) top() *jsonFrame {
	if len(sc.stack) == 0 {
		return nil
	}
	return &sc.stack[len(sc.stack)-1]
}

// value accounts for a value (scalar or container) in the enclosing frame.
func (sc *jsonScan) value() *MessageError {
	top := sc.top()
	switch {
	case top == nil:
	case top.object:
		top.wantKey = true
	default:
		top.n++
		if top.n > sc.l.MaxItems {
			return tooComplex("max_items", fmt.Sprintf("array has more than %d items", sc.l.MaxItems))
		}
	}
	return nil
}

func (sc *jsonScan) key(top *jsonFrame, k string) *MessageError {
	top.wantKey = false
	top.n++
	if top.n > sc.l.MaxKeys {
		return tooComplex("max_keys", fmt.Sprintf("object has more than %d keys", sc.l.MaxKeys))
	}
	if sc.fold {
		k = foldKey(k)
	}
	if top.keys == nil {
		top.keys = make(map[string]struct{})
	}
	if _, dup := top.keys[k]; dup {
		return jsonError("duplicate_key", "message has a duplicate key")
	}
	top.keys[k] = struct{}{}
	return nil
}

// foldKey maps k so that foldKey(a) == foldKey(b) exactly when
// encoding/json would match a and b to the same struct field: ASCII case
// and Unicode simple case folding.
func foldKey(k string) string {
	var b strings.Builder
	b.Grow(len(k))
	for _, r := range k {
		for {
			f := unicode.SimpleFold(r)
			if f <= r {
				r = f
				break
			}
			r = f
		}
		b.WriteRune(r)
	}
	return b.String()
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
	if me := scanJSON(data, l, true); me != nil {
		return v, me
	}
	return decodeStrict[T](data)
}

// decodeStrict decodes data, which scanJSON has accepted, into a T and runs
// its Validate method.
func decodeStrict[T any](data []byte) (T, error) {
	var v T
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return v, jsonError("null", "message must not be null")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return v, jsonError("trailing_data", "message has data after the JSON value")
	}
	if err := selfValidate(&v); err != nil {
		return v, asMessageError(err)
	}
	return v, nil
}

func selfValidate[T any](v *T) error {
	if sv, ok := any(*v).(selfValidator); ok {
		return sv.Validate()
	}
	if sv, ok := any(v).(selfValidator); ok {
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
