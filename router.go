package wssafe

// Router, which dispatches {"type": ...} JSON envelopes to typed handlers.

import (
	"context"
	"encoding/json"
	"fmt"
)

// A Router dispatches JSON messages of the common envelope shape
//
//	{"type": "join", "room": "go"}
//
// by their "type" to a handler registered for that name with [Route].
// Before any decoding the whole message is checked against
// [Options.JSONLimits] (depth, keys, items, number length, duplicate keys
// in any case); then a missing or non-string "type" is an invalid_message
// reply for field "type", and a type with no route an unknown_type reply.
// The type's value is never echoed.
//
// Register every route before the Router serves messages: [Route] is not
// safe for concurrent use with ServeMessage. ServeMessage itself is safe
// for concurrent use. The zero Router is empty and ready to use.
type Router struct {
	routes map[string]route
}

// route serves one type; env is the envelope's top level.
type route func(ctx context.Context, s *Session, env map[string]json.RawMessage) error

// NewRouter returns an empty Router.
func NewRouter() *Router {
	return &Router{routes: make(map[string]route)}
}

// Route routes messages of type typ to fn with the envelope decoded into a
// T, as [JSON] does: strictly, and validated by T's Validate method if it
// has one. T declares the members beside "type"; the "type" member itself
// is removed before decoding, so T need not (and should not) have a field
// for it; with T json.RawMessage, fn gets those members undecoded. Route
// panics if typ is empty or already routed, or fn is nil: those are
// programming errors, like http.ServeMux's.
func Route[T any](r *Router, typ string, fn func(ctx context.Context, s *Session, v T) error) {
	if fn == nil {
		panic("wssafe: Route: nil func for type " + typ)
	}
	r.add(typ, func(ctx context.Context, s *Session, env map[string]json.RawMessage) error {
		delete(env, "type")
		body, err := json.Marshal(env)
		if err != nil {
			return &MessageError{Code: CodeInvalidMessage, Message: "message could not be decoded", Rule: "decode"}
		}
		v, err := decodeStrict[T](body)
		if err != nil {
			return err
		}
		return fn(ctx, s, v)
	})
}

func (r *Router) add(typ string, rt route) {
	if typ == "" {
		panic("wssafe: Router: empty message type")
	}
	if _, dup := r.routes[typ]; dup {
		panic(fmt.Sprintf("wssafe: Router: type %q routed twice", typ))
	}
	if r.routes == nil {
		r.routes = make(map[string]route)
	}
	r.routes[typ] = rt
}

// ServeMessage routes m. Every error it returns for a bad envelope is a
// [*MessageError].
func (r *Router) ServeMessage(ctx context.Context, s *Session, m Message) error {
	if me := scanJSON(m.Data, jsonLimits(s), true); me != nil {
		return me
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(m.Data, &env); err != nil || env == nil {
		return &MessageError{Code: CodeInvalidMessage, Message: "message must be a JSON object", Rule: "envelope"}
	}
	raw, ok := env["type"]
	if !ok {
		return &MessageError{Code: CodeInvalidMessage, Field: "type", Message: "is required", Rule: "required"}
	}
	var typ string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &typ) != nil {
		return &MessageError{Code: CodeInvalidMessage, Field: "type", Message: "must be a string", Rule: "type"}
	}
	rt, ok := r.routes[typ]
	if !ok {
		return &MessageError{Code: CodeUnknownType, Field: "type", Message: "is not a known message type", Rule: "unknown_type"}
	}
	return rt(ctx, s, env)
}
