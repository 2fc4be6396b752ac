package wssafe_test

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// reply is the JSON error frame a client receives for an invalid message.
type reply struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// sendInvalid writes msg and decodes the error reply it must get.
func sendInvalid(t *testing.T, c *websocket.Conn, msg string) reply {
	t.Helper()
	var r reply
	got := roundTrip(t, c, msg)
	require.NoError(t, json.Unmarshal([]byte(got), &r), "reply %q", got)
	require.Equal(t, "error", r.Type, "reply %q", got)
	return r
}

func asMessageError(t *testing.T, err error) *wssafe.MessageError {
	t.Helper()
	var me *wssafe.MessageError
	require.ErrorAs(t, err, &me)
	return me
}

func nested(open, close string, n int) string {
	return strings.Repeat(open, n) + strings.Repeat(close, n)
}

// The strict scan every JSON decode starts with; JSON[json.RawMessage]
// runs it on a message that needs no type, folding the case of keys.
func TestCheckJSON(t *testing.T) {
	t.Parallel()
	manyKeys := func(n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"k%d":%d`, i, i)
		}
		return b.String() + "}"
	}
	manyItems := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat("0,", n), ",") + "]" }
	for _, tc := range []struct {
		name, in   string
		code, rule string // empty: accepted
	}{
		{"object", `{"a":[1,2,{"b":null}],"c":"d"}`, "", ""},
		{"scalar", `42`, "", ""},
		{"escaped NUL in string", `{"a":"x\u0000y"}`, "", ""},
		{"same key in sibling objects", `[{"a":1},{"a":2}]`, "", ""},
		{"keys differing in case", `{"a":1,"A":2}`, "", ""}, // JSON[T] folds case: see below
		{"depth at limit", nested("[", "]", 32), "", ""},
		{"keys at limit", manyKeys(256), "", ""},
		{"items at limit", manyItems(1024), "", ""},
		{"number at limit", strings.Repeat("9", 64), "", ""},
		{"huge exponent", `1e99999`, "", ""},
		{"empty", ``, wssafe.CodeInvalidJSON, "empty"},
		{"whitespace only", " \n", wssafe.CodeInvalidJSON, "empty"},
		{"syntax", `{"a":}`, wssafe.CodeInvalidJSON, "syntax"},
		{"trailing comma", `{"a":1,}`, wssafe.CodeInvalidJSON, "syntax"},
		{"unterminated", `[1,2`, wssafe.CodeInvalidJSON, "syntax"},
		{"single quotes", `{'a':1}`, wssafe.CodeInvalidJSON, "syntax"},
		{"raw NUL in string", "{\"a\":\"x\x00y\"}", wssafe.CodeInvalidJSON, "syntax"},
		{"NUL after value", "{}\x00", wssafe.CodeInvalidJSON, "trailing_data"},
		{"byte order mark", "\ufeff{}", wssafe.CodeInvalidJSON, "syntax"},
		{"NaN", `NaN`, wssafe.CodeInvalidJSON, "syntax"},
		{"leading zero", `01`, wssafe.CodeInvalidJSON, "trailing_data"},
		{"two values", `{"a":1}{"a":2}`, wssafe.CodeInvalidJSON, "trailing_data"},
		{"trailing garbage", `{} x`, wssafe.CodeInvalidJSON, "trailing_data"},
		{"duplicate key", `{"role":"user","role":"admin"}`, wssafe.CodeInvalidJSON, "duplicate_key"},
		{"duplicate key by escape", `{"a":1,"\u0061":2}`, wssafe.CodeInvalidJSON, "duplicate_key"},
		{"nested duplicate key", `{"x":[{"a":1,"b":2,"a":3}]}`, wssafe.CodeInvalidJSON, "duplicate_key"},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", wssafe.CodeInvalidUTF8, "utf8"},
		{"too deep array", nested("[", "]", 33), wssafe.CodeTooComplex, "max_depth"},
		{"too deep object", strings.Repeat(`{"a":`, 33) + "1" + strings.Repeat("}", 33), wssafe.CodeTooComplex, "max_depth"},
		{"deep and unterminated", strings.Repeat("[", 100000), wssafe.CodeTooComplex, "max_depth"},
		{"too many keys", manyKeys(257), wssafe.CodeTooComplex, "max_keys"},
		{"too many items", manyItems(1025), wssafe.CodeTooComplex, "max_items"},
		{"huge number", strings.Repeat("9", 65), wssafe.CodeTooComplex, "max_number_len"},
		{"huge number in array", "[" + strings.Repeat("1", 5000) + "]", wssafe.CodeTooComplex, "max_number_len"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := wssafe.CheckJSON([]byte(tc.in), wssafe.JSONLimits{})
			_, typed := decode[json.RawMessage](tc.in)
			if tc.code == "" {
				assert.NoError(t, err)
				if tc.name == "keys differing in case" {
					assert.Equal(t, "duplicate_key", asMessageError(t, typed).Rule)
				} else {
					assert.NoError(t, typed)
				}
				return
			}
			for _, err := range []error{err, typed} {
				me := asMessageError(t, err)
				assert.Equal(t, tc.code, me.Code)
				assert.Equal(t, tc.rule, me.Rule)
				if len(tc.in) > 3 {
					assert.NotContains(t, me.Message, tc.in, "the reply must not echo the input")
				}
			}
		})
	}
}

// decode runs in through JSON[T] as a handler called without a session
// (the default limits) and returns what the callback got.
func decode[T any](in string) (T, error) {
	var got T
	h := wssafe.JSON(func(_ context.Context, _ *wssafe.Session, v T) error {
		got = v
		return nil
	})
	err := h.ServeMessage(context.Background(), nil, wssafe.Message{Type: wssafe.MessageText, Data: []byte(in)})
	return got, err
}

func TestCheckJSONCustomLimits(t *testing.T) {
	t.Parallel()
	l := wssafe.JSONLimits{MaxDepth: 2, MaxKeys: 1, MaxItems: 2, MaxNumberLen: 3}
	check := func(in string) error { return wssafe.CheckJSON([]byte(in), l) }
	assert.NoError(t, check(`[[1,2]]`))
	assert.Equal(t, "max_depth", asMessageError(t, check(`[[[1]]]`)).Rule)
	assert.Equal(t, "max_keys", asMessageError(t, check(`{"a":1,"b":2}`)).Rule)
	assert.Equal(t, "max_items", asMessageError(t, check(`[1,2,3]`)).Rule)
	assert.Equal(t, "max_number_len", asMessageError(t, check(`1000`)).Rule)
	assert.NoError(t, wssafe.CheckJSON([]byte(nested("[", "]", 32)), wssafe.JSONLimits{MaxDepth: -1}),
		"a negative limit means the default")
}

// Options.JSONLimits bounds what JSON, a Router and Integrity decode on
// the endpoint, read at run time from the session's endpoint.
func TestJSONLimitsOption(t *testing.T) {
	t.Parallel()
	signer, err := wssafe.NewSigner([]byte(strings.Repeat("k", 32)))
	require.NoError(t, err)
	r := wssafe.NewRouter()
	wssafe.Route(r, "say", func(ctx context.Context, s *wssafe.Session, v json.RawMessage) error {
		return s.WriteText(ctx, "routed "+string(v))
	})
	typed := wssafe.JSON(func(ctx context.Context, s *wssafe.Session, v json.RawMessage) error {
		return s.WriteText(ctx, "typed "+string(v))
	})
	// A binary message goes to the router, a text one to JSON[T]; an
	// "x" message is opened by Integrity first.
	h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		if m.Type == wssafe.MessageBinary {
			return r.ServeMessage(ctx, s, m)
		}
		return typed.ServeMessage(ctx, s, m)
	})
	sealed := wssafe.Chain(h, wssafe.Integrity(signer))
	mux := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		if strings.HasPrefix(m.Text(), `{"msg"`) {
			return sealed.ServeMessage(ctx, s, m)
		}
		return h.ServeMessage(ctx, s, m)
	})
	_, url := server(t, mux, &wssafe.Options{JSONLimits: wssafe.JSONLimits{MaxDepth: 2, MaxKeys: 2, MaxItems: 2, MaxNumberLen: 3}})
	c := dial(t, url, nil)
	ctx := ctxT(t)
	answer := func(typ websocket.MessageType, msg string) string {
		t.Helper()
		require.NoError(t, c.Write(ctx, typ, []byte(msg)))
		_, got, err := c.Read(ctx)
		require.NoError(t, err)
		return string(got)
	}
	rule := func(typ websocket.MessageType, msg string) string {
		t.Helper()
		var r struct{ Code string }
		require.NoError(t, json.Unmarshal([]byte(answer(typ, msg)), &r))
		return r.Code
	}
	text, bin := websocket.MessageText, websocket.MessageBinary

	assert.Equal(t, `typed [[1,2]]`, answer(text, `[[1,2]]`))
	assert.Equal(t, wssafe.CodeTooComplex, rule(text, `[[[1]]]`))
	assert.Equal(t, wssafe.CodeTooComplex, rule(text, `{"a":1,"b":2,"c":3}`))
	assert.Equal(t, wssafe.CodeTooComplex, rule(text, `[1,2,3]`))
	assert.Equal(t, wssafe.CodeTooComplex, rule(text, `1000`))

	assert.Equal(t, `routed {"a":1}`, answer(bin, `{"type":"say","a":1}`))
	assert.Equal(t, wssafe.CodeTooComplex, rule(bin, `{"type":"say","a":1,"b":2}`), "the router counts the envelope's keys")

	msg := `{"a":1}`
	env := `{"msg":` + msg + `,"sig":"` + hex.EncodeToString(signer.Sign([]byte(msg))) + `"}`
	assert.Equal(t, `typed {"a":1}`, answer(text, env))
	deep := `[[1]]`
	env = `{"msg":` + deep + `,"sig":"` + hex.EncodeToString(signer.Sign([]byte(deep))) + `"}`
	assert.Equal(t, wssafe.CodeTooComplex, rule(text, env), "the envelope is bounded too")

	// Without the option, the defaults.
	_, url = server(t, typed, nil)
	c = dial(t, url, nil)
	assert.Equal(t, "typed "+nested("[", "]", 32), roundTrip(t, c, nested("[", "]", 32)))
	assert.Equal(t, wssafe.CodeTooComplex, sendInvalid(t, c, nested("[", "]", 33)).Code)
}

func TestMaxBytes(t *testing.T) {
	t.Parallel()
	text := func(s string) wssafe.Message { return wssafe.Message{Type: wssafe.MessageText, Data: []byte(s)} }
	bin := func(s string) wssafe.Message { return wssafe.Message{Type: wssafe.MessageBinary, Data: []byte(s)} }

	all := wssafe.MaxBytes(4)
	assert.NoError(t, all(text("1234")))
	me := asMessageError(t, all(bin("12345")))
	assert.Equal(t, wssafe.CodeTooLarge, me.Code)
	assert.Equal(t, "max_bytes", me.Rule)

	textOnly := wssafe.MaxBytes(4, wssafe.MessageText)
	assert.Error(t, textOnly(text("12345")))
	assert.NoError(t, textOnly(bin("12345")), "a text limit does not apply to binary")
}

// signUp is a typed message with its own Validate.
type signUp struct {
	Email string `json:"email"`
	Name  string `json:"name"`
	Age   int    `json:"age"`
	Plan  string `json:"plan"`
}

func (s signUp) Validate() error {
	return cmp.Or(
		wssafe.Email("email", s.Email),
		wssafe.Length("name", s.Name, 1, 32),
		wssafe.Range("age", s.Age, 13, 130),
		wssafe.OneOf("plan", s.Plan, "free", "pro"),
	)
}

// ptrValidated validates through a pointer receiver and fails with a plain
// error whose text quotes the input, as careless code does.
type ptrValidated struct {
	Secret string `json:"secret"`
}

func (p *ptrValidated) Validate() error {
	if p.Secret == "" {
		return nil
	}
	return fmt.Errorf("bad secret %q", p.Secret)
}

// customError returns its own MessageError.
type customError struct {
	N int `json:"n"`
}

func (c customError) Validate() error {
	if c.N < 0 {
		return &wssafe.MessageError{Code: "negative", Field: "n", Message: "must not be negative"}
	}
	return nil
}

func TestJSONDecodesStrictly(t *testing.T) {
	t.Parallel()
	good := `{"email":"ann@example.com","name":"Ann","age":30,"plan":"pro"}`
	v, err := decode[signUp](good)
	require.NoError(t, err)
	assert.Equal(t, signUp{Email: "ann@example.com", Name: "Ann", Age: 30, Plan: "pro"}, v)

	for _, tc := range []struct {
		name, in, code, field, rule string
	}{
		{"unknown field", `{"email":"ann@example.com","name":"Ann","age":30,"plan":"pro","admin":true}`, wssafe.CodeUnknownField, "", "unknown_field"},
		{"wrong type", `{"email":"ann@example.com","name":"Ann","age":"30","plan":"pro"}`, wssafe.CodeInvalidMessage, "age", "type"},
		{"huge number into int", `{"email":"ann@example.com","name":"Ann","age":1e30,"plan":"pro"}`, wssafe.CodeInvalidMessage, "age", "type"},
		{"fractional into int", `{"email":"ann@example.com","name":"Ann","age":30.5,"plan":"pro"}`, wssafe.CodeInvalidMessage, "age", "type"},
		{"case-folded duplicate", `{"email":"ann@example.com","EMAIL":"eve@example.com","name":"Ann","age":30,"plan":"pro"}`, wssafe.CodeInvalidJSON, "", "duplicate_key"},
		{"Kelvin-sign duplicate", "{\"k\":1,\"\u212a\":2}", wssafe.CodeInvalidJSON, "", "duplicate_key"},
		{"null", `null`, wssafe.CodeInvalidJSON, "", "null"},
		{"array", `[]`, wssafe.CodeInvalidMessage, "", "type"},
		{"trailing data", good + `{}`, wssafe.CodeInvalidJSON, "", "trailing_data"},
		{"field rule", `{"email":"ann(at)example.com","name":"Ann","age":30,"plan":"pro"}`, wssafe.CodeInvalidMessage, "email", "email.syntax"},
		{"range rule", `{"email":"ann@example.com","name":"Ann","age":7,"plan":"pro"}`, wssafe.CodeInvalidMessage, "age", "range"},
		{"one-of rule", `{"email":"ann@example.com","name":"Ann","age":30,"plan":"root"}`, wssafe.CodeInvalidMessage, "plan", "one_of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := decode[signUp](tc.in)
			me := asMessageError(t, err)
			assert.Equal(t, tc.code, me.Code)
			assert.Equal(t, tc.field, me.Field)
			assert.Equal(t, tc.rule, me.Rule)
		})
	}

	t.Run("pointer receiver, plain error", func(t *testing.T) {
		t.Parallel()
		_, err := decode[ptrValidated](`{"secret":"hunter2"}`)
		me := asMessageError(t, err)
		assert.Equal(t, wssafe.CodeInvalidMessage, me.Code)
		assert.Equal(t, "validate", me.Rule)
		assert.NotContains(t, me.Message, "hunter2")
		assert.Contains(t, me.Err.Error(), "hunter2", "the cause stays available to errors.As")
	})
	t.Run("own MessageError", func(t *testing.T) {
		t.Parallel()
		_, err := decode[customError](`{"n":-1}`)
		assert.Equal(t, "negative", asMessageError(t, err).Code)
	})
	t.Run("pointer type", func(t *testing.T) {
		t.Parallel()
		v, err := decode[*customError](`{"n":2}`)
		require.NoError(t, err)
		assert.Equal(t, 2, v.N)
		_, err = decode[*customError](`{"n":-2}`)
		assert.Equal(t, "negative", asMessageError(t, err).Code)
	})
	t.Run("limits", func(t *testing.T) {
		t.Parallel()
		_, err := decode[map[string]any](nested("[", "]", 33))
		assert.Equal(t, wssafe.CodeTooComplex, asMessageError(t, err).Code)
	})
}

func TestValidateMiddleware(t *testing.T) {
	t.Parallel()
	called := 0
	h := wssafe.Chain(wssafe.HandlerFunc(func(context.Context, *wssafe.Session, wssafe.Message) error {
		called++
		return nil
	}), wssafe.Validate(
		wssafe.MaxBytes(8),
		func(m wssafe.Message) error {
			if strings.Contains(m.Text(), "x") {
				return &wssafe.FieldError{Field: "body", Rule: "no_x", Message: "must not contain x"}
			}
			return nil
		},
		func(m wssafe.Message) error {
			if strings.Contains(m.Text(), "y") {
				return errors.New("y is right out")
			}
			return nil
		},
	))
	ctx := context.Background()
	assert.NoError(t, h.ServeMessage(ctx, nil, wssafe.Message{Data: []byte("ok")}))
	assert.Equal(t, 1, called)

	me := asMessageError(t, h.ServeMessage(ctx, nil, wssafe.Message{Data: []byte("123456789")}))
	assert.Equal(t, wssafe.CodeTooLarge, me.Code)
	me = asMessageError(t, h.ServeMessage(ctx, nil, wssafe.Message{Data: []byte("x")}))
	assert.Equal(t, wssafe.MessageError{Code: wssafe.CodeInvalidMessage, Field: "body", Message: "must not contain x", Rule: "no_x", Err: me.Err}, *me)
	me = asMessageError(t, h.ServeMessage(ctx, nil, wssafe.Message{Data: []byte("y")}))
	assert.Equal(t, "validate", me.Rule)
	assert.NotContains(t, me.Message, "right out")
	assert.Equal(t, 1, called, "the handler never sees an invalid message")
}

// signUpServer serves typed signUp messages and echoes the accepted value.
func signUpServer(t *testing.T, opts *wssafe.Options) string {
	t.Helper()
	_, url := server(t, wssafe.JSON(func(ctx context.Context, s *wssafe.Session, v signUp) error {
		return s.WriteJSON(ctx, map[string]any{"type": "welcome", "name": v.Name, "age": v.Age})
	}), opts)
	return url
}

func TestTypedCallbackReceivesT(t *testing.T) {
	t.Parallel()
	c := dial(t, signUpServer(t, nil), nil)
	got := roundTrip(t, c, `{"email":"ann@example.com","name":"Ann","age":30,"plan":"free"}`)
	assert.JSONEq(t, `{"type":"welcome","name":"Ann","age":30}`, got)
}

func TestInvalidMessageReplyKeepsSessionOpen(t *testing.T) {
	t.Parallel()
	log, buf := newLogger()
	c := dial(t, signUpServer(t, &wssafe.Options{Logger: log}), nil)

	const secretish = "not-an-address-SENTINEL"
	r := sendInvalid(t, c, `{"email":"`+secretish+`","name":"Ann","age":30,"plan":"free"}`)
	assert.Equal(t, reply{Type: "error", Code: wssafe.CodeInvalidMessage, Field: "email", Message: "must be an email address"}, r)

	r = sendInvalid(t, c, `{"email":"ann@example.com","name":"Ann","age":30,"plan":"free","role":"SENTINEL"}`)
	assert.Equal(t, wssafe.CodeUnknownField, r.Code)
	assert.Empty(t, r.Field, "an unknown member's name is not echoed")

	r = sendInvalid(t, c, strings.Repeat("[", 64)+strings.Repeat("]", 64))
	assert.Equal(t, wssafe.CodeTooComplex, r.Code)

	// The session is still open and serves valid messages.
	got := roundTrip(t, c, `{"email":"ann@example.com","name":"Ann","age":30,"plan":"free"}`)
	assert.JSONEq(t, `{"type":"welcome","name":"Ann","age":30}`, got)
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))

	logs := buf.String()
	assert.NotContains(t, logs, "SENTINEL", "values never reach the log")
	var line map[string]any
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"rule":"email.syntax"`) {
			require.NoError(t, json.Unmarshal([]byte(l), &line))
		}
	}
	require.NotNil(t, line, "the validation failure is logged with its rule:\n%s", logs)
	assert.Equal(t, "WARN", line["level"])
	assert.Equal(t, "invalid_message", line["event"])
	assert.Equal(t, "email", line["field"])
	assert.Equal(t, wssafe.CodeInvalidMessage, line["code"])
	assert.NotEmpty(t, line["session"])
}

func TestInvalidMessageBudgetCloses1008(t *testing.T) {
	t.Parallel()
	url := signUpServer(t, &wssafe.Options{InvalidMessages: wssafe.Rate{PerSecond: 1.0 / 3600, Burst: 3}})
	c := dial(t, url, nil)
	for range 3 {
		sendInvalid(t, c, `{}`)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`{}`)))
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusPolicyViolation, ce.Code)
	assert.Equal(t, "too many invalid messages", ce.Reason)
}

func TestInvalidMessageStrictMode(t *testing.T) {
	t.Parallel()
	url := signUpServer(t, &wssafe.Options{CloseOnInvalidMessage: true})
	c := dial(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`{"email":1}`)))
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusPolicyViolation, ce.Code)
}

// utf8Payload is the Validator an application writes for binary payloads
// its protocol declares to be text (text messages are checked by the
// endpoint, and an invalid one closes 1007).
func utf8Payload(m wssafe.Message) error {
	if !utf8.Valid(m.Data) {
		return &wssafe.MessageError{Code: wssafe.CodeInvalidUTF8, Message: "message is not valid UTF-8", Rule: "utf8"}
	}
	return nil
}

func TestValidateOverBinaryText(t *testing.T) {
	t.Parallel()
	h := wssafe.Chain(echo, wssafe.Validate(utf8Payload, wssafe.MaxBytes(16, wssafe.MessageBinary)))
	_, url := server(t, h, nil)
	c := dial(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	read := func() reply {
		_, got, err := c.Read(ctx)
		require.NoError(t, err)
		var r reply
		require.NoError(t, json.Unmarshal(got, &r))
		return r
	}
	require.NoError(t, c.Write(ctx, websocket.MessageBinary, []byte{0xff, 0xfe}))
	assert.Equal(t, wssafe.CodeInvalidUTF8, read().Code)
	require.NoError(t, c.Write(ctx, websocket.MessageBinary, []byte(strings.Repeat("a", 17))))
	assert.Equal(t, wssafe.CodeTooLarge, read().Code)
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("a", 17))))
	_, got, err := c.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "Server received: "+strings.Repeat("a", 17), string(got), "the binary limit leaves text alone")
}

func TestFieldErrorFromPlainCallbackIsAnswered(t *testing.T) {
	t.Parallel()
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		if err := wssafe.Email("email", m.Text()); err != nil {
			return fmt.Errorf("sign-up: %w", err)
		}
		return s.WriteText(ctx, "ok")
	}), nil)
	c := dial(t, url, nil)
	r := sendInvalid(t, c, "not an address")
	assert.Equal(t, reply{Type: "error", Code: wssafe.CodeInvalidMessage, Field: "email", Message: "must be an email address"}, r)
	assert.Equal(t, "ok", roundTrip(t, c, "ann@example.com"), "the session stays open")
}
