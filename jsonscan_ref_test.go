package wssafe

// The Decoder-based scan that scanJSON replaced, kept as the reference
// that FuzzScanJSONDifferential compares scanJSON with.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

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

// scanJSONDecoder checks data against l and returns the reply for the first
// violation, or nil. With fold, keys that differ only in case count as
// duplicates: encoding/json matches them to the same struct field.
func scanJSONDecoder(data []byte, l JSONLimits, fold bool) *MessageError {
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
