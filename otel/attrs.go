package wsotel

// The attribute values, each from a fixed set: a value the set does not
// know is reported as "other", so that no client, token or application
// can make a new time series.

import (
	"strconv"

	"github.com/wssafe/wssafe"
	"go.opentelemetry.io/otel/attribute"
)

// Attribute keys. error.type is OpenTelemetry's general attribute for the
// class of error an operation ended with; the rest are this library's.
const (
	keyErrorType   = attribute.Key("error.type")
	keyDirection   = attribute.Key("network.io.direction") // receive, transmit
	keyHandshake   = attribute.Key("wssafe.handshake.status")
	keyAuth        = attribute.Key("wssafe.auth.status")
	keyCloseCode   = attribute.Key("wssafe.close.code")
	keyCloseStatus = attribute.Key("wssafe.close.status")
	keyLimit       = attribute.Key("wssafe.limit")
)

// other is the value of any reason or code outside its fixed set.
const other = "other"

// closeStatuses names the close codes a session can end with: the
// registered codes a peer or the library sends (RFC 6455 section 7.4.1,
// the IANA registry), in snake_case after the registry's names, and the
// three wssafe uses from the 3000 range. Any other code (a 4000-4999
// private code a client chose, an unassigned one) is "other".
var closeStatuses = map[wssafe.StatusCode]string{
	1000: "normal_closure",
	1001: "going_away",
	1002: "protocol_error",
	1003: "unsupported_data",
	1005: "no_status_received",
	1006: "abnormal_closure",
	1007: "invalid_payload",
	1008: "policy_violation",
	1009: "message_too_big",
	1010: "mandatory_extension",
	1011: "internal_error",
	1012: "service_restart",
	1013: "try_again_later",
	1014: "bad_gateway",
	3000: "unauthorized",
	3003: "forbidden",
	3008: "timeout",
}

// closeAttrs returns the attributes of a session closed with code: the
// code (as a string, so that it can be "other") and its status name.
func closeAttrs(code wssafe.StatusCode) attribute.Set {
	status, ok := closeStatuses[code]
	if !ok {
		return attribute.NewSet(keyCloseCode.String(other), keyCloseStatus.String(other))
	}
	return attribute.NewSet(keyCloseCode.String(strconv.Itoa(int(code))), keyCloseStatus.String(status))
}

// refusedAttrs returns the attributes of a handshake refused for the
// bounded reason.
func refusedAttrs(reason string) attribute.Set {
	return attribute.NewSet(keyHandshake.String("refused"), keyErrorType.String(reason))
}

// set builds a lookup table of fixed values.
func set(vs ...string) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}

// The fixed sets: the core's Event constants and reasons for each kind of
// counter, and the reasons of this repository's Redis backplane.
var (
	refusalReasons = set(wssafe.EventIPDenied, wssafe.EventOriginRefused, wssafe.EventHandshakeRate,
		wssafe.EventIPConnLimit, wssafe.EventSubjectConnLimit, wssafe.EventAtCapacity,
		wssafe.EventHandshakeFailed, wssafe.EventRequestBody, wssafe.EventHostRefused,
		wssafe.EventTLSRequired, wssafe.EventClusterUnavailable, wssafe.EventShuttingDown,
		wssafe.EventAuthFailed, wssafe.EventAuthForbidden, wssafe.EventPanic)
	authReasons = set("missing", "malformed", "too_large", "query_token", "alg_none", "alg_not_allowed",
		"key_in_header", "crit", "typ", "signature", "unknown_key", "keys_unavailable", "expired",
		"not_yet_valid", "issued_in_future", "issuer", "audience", "missing_claim", "invalid_claim",
		"claims", "lifetime", "revoked", "forbidden", "subject_changed", "panic")
	limitReasons = set(wssafe.EventMessageTooBig, wssafe.EventMessageTimeout, wssafe.EventPingFlood,
		wssafe.EventPongFlood, wssafe.EventMessageRate, wssafe.EventSubjectRate, wssafe.EventByteRate,
		wssafe.EventSlowConsumer, wssafe.EventInflationRatio)
	validationReasons = set(wssafe.EventInvalidUTF8, wssafe.EventUnsupportedType, wssafe.EventInvalidMessage, wssafe.EventInvalidCompressed)
	droppedReasons    = set("down", "queue_full", "write_failed", "stopping", "controls_full")
	refusedReasons    = set("malformed", "unknown_key", "bad_mac", "stale", "replay", "too_many_peers", "bad_record")
)

// bound returns v if known has it, else "other".
func bound(known map[string]bool, v string) string {
	if known[v] {
		return v
	}
	return other
}
