package wssafe_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

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

func TestValidJSON(t *testing.T) {
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
		{"keys differing in case", `{"a":1,"A":2}`, "", ""},
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
			err := wssafe.ValidJSON(wssafe.JSONLimits{})(wssafe.Message{Type: wssafe.MessageText, Data: []byte(tc.in)})
			if tc.code == "" {
				assert.NoError(t, err)
				return
			}
			me := asMessageError(t, err)
			assert.Equal(t, tc.code, me.Code)
			assert.Equal(t, tc.rule, me.Rule)
			if len(tc.in) > 3 {
				assert.NotContains(t, me.Message, tc.in, "the reply must not echo the input")
			}
		})
	}
}

func TestValidJSONCustomLimits(t *testing.T) {
	t.Parallel()
	v := wssafe.ValidJSON(wssafe.JSONLimits{MaxDepth: 2, MaxKeys: 1, MaxItems: 2, MaxNumberLen: 3})
	check := func(in string) error { return v(wssafe.Message{Data: []byte(in)}) }
	assert.NoError(t, check(`[[1,2]]`))
	assert.Equal(t, "max_depth", asMessageError(t, check(`[[[1]]]`)).Rule)
	assert.Equal(t, "max_keys", asMessageError(t, check(`{"a":1,"b":2}`)).Rule)
	assert.Equal(t, "max_items", asMessageError(t, check(`[1,2,3]`)).Rule)
	assert.Equal(t, "max_number_len", asMessageError(t, check(`1000`)).Rule)
	assert.NoError(t, wssafe.ValidJSON(wssafe.JSONLimits{MaxDepth: -1})(wssafe.Message{Data: []byte(nested("[", "]", 32))}),
		"a negative limit means the default")
}

func TestMaxBytesAndUTF8(t *testing.T) {
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

	assert.NoError(t, wssafe.UTF8(bin("xin chào")))
	me = asMessageError(t, wssafe.UTF8(bin("\xc3\x28")))
	assert.Equal(t, wssafe.CodeInvalidUTF8, me.Code)
	assert.Error(t, wssafe.UTF8(bin("\xed\xa0\x80")), "an encoded surrogate is not UTF-8")
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

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	good := `{"email":"ann@example.com","name":"Ann","age":30,"plan":"pro"}`
	v, err := wssafe.DecodeJSON[signUp]([]byte(good), wssafe.JSONLimits{})
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
			_, err := wssafe.DecodeJSON[signUp]([]byte(tc.in), wssafe.JSONLimits{})
			me := asMessageError(t, err)
			assert.Equal(t, tc.code, me.Code)
			assert.Equal(t, tc.field, me.Field)
			assert.Equal(t, tc.rule, me.Rule)
		})
	}

	t.Run("pointer receiver, plain error", func(t *testing.T) {
		t.Parallel()
		_, err := wssafe.DecodeJSON[ptrValidated]([]byte(`{"secret":"hunter2"}`), wssafe.JSONLimits{})
		me := asMessageError(t, err)
		assert.Equal(t, wssafe.CodeInvalidMessage, me.Code)
		assert.Equal(t, "validate", me.Rule)
		assert.NotContains(t, me.Message, "hunter2")
		assert.Contains(t, me.Err.Error(), "hunter2", "the cause stays available to errors.As")
	})
	t.Run("own MessageError", func(t *testing.T) {
		t.Parallel()
		_, err := wssafe.DecodeJSON[customError]([]byte(`{"n":-1}`), wssafe.JSONLimits{})
		assert.Equal(t, "negative", asMessageError(t, err).Code)
	})
	t.Run("pointer type", func(t *testing.T) {
		t.Parallel()
		v, err := wssafe.DecodeJSON[*customError]([]byte(`{"n":2}`), wssafe.JSONLimits{})
		require.NoError(t, err)
		assert.Equal(t, 2, v.N)
		_, err = wssafe.DecodeJSON[*customError]([]byte(`{"n":-2}`), wssafe.JSONLimits{})
		assert.Equal(t, "negative", asMessageError(t, err).Code)
	})
	t.Run("limits", func(t *testing.T) {
		t.Parallel()
		_, err := wssafe.DecodeJSON[map[string]any]([]byte(`{"a":{"b":{}}}`), wssafe.JSONLimits{MaxDepth: 2})
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

func TestValidateOverBinaryText(t *testing.T) {
	t.Parallel()
	h := wssafe.Chain(echo, wssafe.Validate(wssafe.UTF8, wssafe.MaxBytes(16, wssafe.MessageBinary)))
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
