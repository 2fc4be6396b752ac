package wssafe_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

type join struct {
	Room string `json:"room"`
}

func (j join) Validate() error { return wssafe.Length("room", j.Room, 1, 16) }

type say struct {
	Room string `json:"room"`
	Text string `json:"text"`
}

// chatRouter routes join and say to typed handlers and raw to one that
// takes the members undecoded.
func chatRouter() *wssafe.Router {
	r := wssafe.NewRouter()
	wssafe.Route(r, "join", func(ctx context.Context, s *wssafe.Session, j join) error {
		return s.WriteText(ctx, "joined "+j.Room)
	})
	wssafe.Route(r, "say", func(ctx context.Context, s *wssafe.Session, m say) error {
		return s.WriteText(ctx, m.Room+": "+m.Text)
	})
	wssafe.Route(r, "raw", func(ctx context.Context, s *wssafe.Session, raw json.RawMessage) error {
		return s.WriteText(ctx, "raw "+string(raw))
	})
	return r
}

func TestRouterEndToEnd(t *testing.T) {
	t.Parallel()
	_, url := server(t, chatRouter(), nil)
	c := dial(t, url, nil)

	assert.Equal(t, "joined go", roundTrip(t, c, `{"type":"join","room":"go"}`))
	assert.Equal(t, "joined go", roundTrip(t, c, `{"room":"go","type":"join"}`), "member order does not matter")
	assert.Equal(t, "go: hi", roundTrip(t, c, `{"type":"say","room":"go","text":"hi"}`))
	assert.Equal(t, `raw {"x":1}`, roundTrip(t, c, `{"type":"raw","x":1}`), "a json.RawMessage route gets the members beside type")

	r := sendInvalid(t, c, `{"type":"SENTINEL"}`)
	assert.Equal(t, reply{Type: "error", Code: wssafe.CodeUnknownType, Field: "type", Message: "is not a known message type"}, r)

	r = sendInvalid(t, c, `{"type":"join","room":""}`)
	assert.Equal(t, reply{Type: "error", Code: wssafe.CodeInvalidMessage, Field: "room", Message: "must be 1 to 16 characters long"}, r)

	r = sendInvalid(t, c, `{"type":"join","room":"go","admin":true}`)
	assert.Equal(t, wssafe.CodeUnknownField, r.Code)

	assert.Equal(t, "go: still open", roundTrip(t, c, `{"type":"say","room":"go","text":"still open"}`))
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
}

func TestRouterEnvelope(t *testing.T) {
	t.Parallel()
	r := chatRouter()
	for _, tc := range []struct {
		name, in, code, field, rule string
	}{
		{"not JSON", `type=join`, wssafe.CodeInvalidJSON, "", "syntax"},
		{"array", `[{"type":"join"}]`, wssafe.CodeInvalidMessage, "", "envelope"},
		{"string", `"join"`, wssafe.CodeInvalidMessage, "", "envelope"},
		{"null", `null`, wssafe.CodeInvalidMessage, "", "envelope"},
		{"no type", `{"room":"go"}`, wssafe.CodeInvalidMessage, "type", "required"},
		{"type in other case", `{"Type":"join","room":"go"}`, wssafe.CodeInvalidMessage, "type", "required"},
		{"numeric type", `{"type":1}`, wssafe.CodeInvalidMessage, "type", "type"},
		{"null type", `{"type":null}`, wssafe.CodeInvalidMessage, "type", "type"},
		{"empty type", `{"type":""}`, wssafe.CodeUnknownType, "type", "unknown_type"},
		{"unknown type", `{"type":"drop_tables"}`, wssafe.CodeUnknownType, "type", "unknown_type"},
		{"type differs in case", `{"type":"JOIN","room":"go"}`, wssafe.CodeUnknownType, "type", "unknown_type"},
		{"duplicate type", `{"type":"join","type":"say","room":"go","text":"x"}`, wssafe.CodeInvalidJSON, "", "duplicate_key"},
		{"case-folded duplicate type", `{"type":"say","TYPE":"join","room":"go","text":"x"}`, wssafe.CodeInvalidJSON, "", "duplicate_key"},
		{"case-folded duplicate member", `{"type":"join","room":"go","ROOM":"admin"}`, wssafe.CodeInvalidJSON, "", "duplicate_key"},
		{"too deep", `{"type":"join","room":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, wssafe.CodeTooComplex, "", "max_depth"},
		{"wrong member type", `{"type":"join","room":7}`, wssafe.CodeInvalidMessage, "room", "type"},
		{"trailing data", `{"type":"join","room":"go"} {}`, wssafe.CodeInvalidJSON, "", "trailing_data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			me := asMessageError(t, r.ServeMessage(context.Background(), nil, wssafe.Message{Type: wssafe.MessageText, Data: []byte(tc.in)}))
			assert.Equal(t, tc.code, me.Code)
			assert.Equal(t, tc.field, me.Field)
			assert.Equal(t, tc.rule, me.Rule)
		})
	}
}

func TestRouterRegistrationPanics(t *testing.T) {
	t.Parallel()
	r := wssafe.NewRouter()
	noop := func(context.Context, *wssafe.Session, join) error { return nil }
	assert.Panics(t, func() { wssafe.Route(r, "", noop) })
	assert.Panics(t, func() { wssafe.Route[join](r, "y", nil) })
	wssafe.Route(r, "x", noop)
	assert.Panics(t, func() { wssafe.Route(r, "x", noop) })
	var zero wssafe.Router
	assert.NotPanics(t, func() { wssafe.Route(&zero, "x", noop) }, "the zero Router is usable")
}
