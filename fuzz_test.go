package wssafe_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/mail"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/wssafe/wssafe"
)

// Seed corpora are checked in under testdata/fuzz/<FuzzName>/.

var replyCodes = map[string]bool{
	wssafe.CodeInvalidMessage: true, wssafe.CodeInvalidJSON: true, wssafe.CodeInvalidUTF8: true,
	wssafe.CodeTooLarge: true, wssafe.CodeTooComplex: true, wssafe.CodeUnknownField: true,
	wssafe.CodeUnknownType: true, wssafe.CodeTampered: true, wssafe.CodeReplayed: true,
}

// checkReply fails unless err is a MessageError with a known code whose
// text does not quote the input.
func checkReply(t *testing.T, err error, input []byte) *wssafe.MessageError {
	t.Helper()
	var me *wssafe.MessageError
	if !errors.As(err, &me) {
		t.Fatalf("error %v is not a *MessageError", err)
	}
	if !replyCodes[me.Code] {
		t.Fatalf("unknown code %q", me.Code)
	}
	if len(input) >= 16 && (strings.Contains(me.Message, string(input)) || strings.Contains(me.Field, string(input))) {
		t.Fatalf("reply %+v echoes the input", me)
	}
	return me
}

var small = wssafe.JSONLimits{MaxDepth: 4, MaxKeys: 4, MaxItems: 4, MaxNumberLen: 8}

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":null}]}`, `[[[[[]]]]]`, `{"a":1,"a":2}`, `1e999`, "\"\xff\"", `{} {}`} {
		f.Add([]byte(s))
	}
	generous := wssafe.JSONLimits{MaxDepth: 1 << 20, MaxKeys: 1 << 20, MaxItems: 1 << 20, MaxNumberLen: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		valid := json.Valid(data) && utf8.Valid(data)
		err := wssafe.CheckJSON(data, generous)
		if err == nil && !valid {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		if err != nil {
			me := checkReply(t, err, data)
			if valid && me.Rule != "duplicate_key" {
				t.Fatalf("refused valid JSON %q: %v", data, err)
			}
		}
		err = wssafe.CheckJSON(data, small)
		if err != nil {
			checkReply(t, err, data)
			return
		}
		if !valid {
			t.Fatalf("accepted invalid JSON %q under small limits", data)
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("accepted %q that does not decode: %v", data, err)
		}
		if msg := withinLimits(v, small, 0); msg != "" {
			t.Fatalf("accepted %q over the limits: %s", data, msg)
		}
	})
}

// withinLimits independently checks a decoded value against l.
func withinLimits(v any, l wssafe.JSONLimits, depth int) string {
	switch v := v.(type) {
	case map[string]any:
		if depth+1 > l.MaxDepth || len(v) > l.MaxKeys {
			return "object"
		}
		for _, e := range v {
			if msg := withinLimits(e, l, depth+1); msg != "" {
				return msg
			}
		}
	case []any:
		if depth+1 > l.MaxDepth || len(v) > l.MaxItems {
			return "array"
		}
		for _, e := range v {
			if msg := withinLimits(e, l, depth+1); msg != "" {
				return msg
			}
		}
	case json.Number:
		if len(v) > l.MaxNumberLen {
			return "number"
		}
	}
	return ""
}

func FuzzEmail(f *testing.F) {
	for _, s := range []string{"ann@example.com", `"a b"@example.com`, "ann@bücher.example", "用户@例子.广告", "ann@xn--bcher-kva.example", "ann@[127.0.0.1]", "a(b)@c.d"} {
		f.Add(s)
	}
	strict := wssafe.EmailRule{}
	lax := wssafe.EmailRule{AllowIDN: true, AllowUnicodeLocal: true, AllowQuotedLocal: true}
	f.Fuzz(func(t *testing.T, s string) {
		cs, errStrict := strict.Canonical("email", s)
		cl, errLax := lax.Canonical("email", s)
		for _, err := range []error{errStrict, errLax} {
			var fe *wssafe.FieldError
			if err != nil && (!errors.As(err, &fe) || !strings.HasPrefix(fe.Rule, "email.") || len(s) >= 16 && strings.Contains(err.Error(), s)) {
				t.Fatalf("bad error for %q: %v", s, err)
			}
		}
		if errStrict == nil {
			if errLax != nil || cl != cs {
				t.Fatalf("%q: strict accepts (%q) but lax gives %q, %v", s, cs, cl, errLax)
			}
			for i := 0; i < len(cs); i++ {
				if cs[i] >= utf8.RuneSelf {
					t.Fatalf("%q: strict canonical %q is not ASCII", s, cs)
				}
			}
		}
		if errLax == nil {
			checkCanonical(t, lax, s, cl)
		}
	})
}

func checkCanonical(t *testing.T, r wssafe.EmailRule, in, c string) {
	t.Helper()
	at := strings.LastIndexByte(c, '@')
	if len(c) > wssafe.MaxEmailLen || at < 1 || at > wssafe.MaxEmailLocalLen || !utf8.ValidString(c) {
		t.Fatalf("%q: canonical %q breaks the length rules", in, c)
	}
	if strings.ContainsFunc(c, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
		t.Fatalf("%q: canonical %q has control or format characters", in, c)
	}
	if a, err := mail.ParseAddress(c); err != nil || a.Name != "" {
		t.Fatalf("%q: net/mail refuses canonical %q: %v", in, c, err)
	}
	if again, err := r.Canonical("email", c); err != nil || again != c {
		t.Fatalf("%q: canonical %q is not stable: %q, %v", in, c, again, err)
	}
}

func FuzzRouter(f *testing.F) {
	for _, s := range []string{`{"type":"join","room":"go"}`, `{"type":"say","room":"go","text":"hi"}`, `{"type":"raw"}`, `{"type":"x"}`, `{"type":"join","TYPE":"say"}`} {
		f.Add([]byte(s))
	}
	r := wssafe.NewRouter()
	wssafe.Route(r, "join", func(_ context.Context, _ *wssafe.Session, j join) error {
		if j.Validate() != nil {
			return errors.New("handler got an invalid join")
		}
		return nil
	})
	wssafe.Route(r, "say", func(context.Context, *wssafe.Session, say) error { return nil })
	wssafe.Route(r, "raw", func(_ context.Context, _ *wssafe.Session, raw json.RawMessage) error {
		if !json.Valid(raw) {
			return errors.New("handler got invalid JSON")
		}
		return nil
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		err := r.ServeMessage(context.Background(), nil, wssafe.Message{Type: wssafe.MessageText, Data: data})
		if err != nil {
			checkReply(t, err, data)
		}
	})
}
