package wssafe_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// decodeObjectReference is the token-by-token decoder decodeObject
// replaced: the specification it must agree with.
func decodeObjectReference(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	m := make(map[string]json.RawMessage)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if _, dup := m[name]; dup {
			return nil, errors.New("duplicate")
		}
		m[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return m, nil
}

var objectCases = []struct {
	in  string
	ok  bool
	len int
}{
	{`{"alg":"HS256","typ":"JWT"}`, true, 2},
	{` {"a":1} `, true, 1},
	{`{}`, true, 0},
	{`{"a":{"a":1,"b":[{"a":2}]},"b":"x:y"}`, true, 2}, // nested names and colons in strings are not members
	{`{"a\"b":1,"c":"\\","d":"\":"}`, true, 3},         // escaped quotes and backslashes
	{`{"a":1,"a":2}`, false, 0},
	{`{"a":1,"\u0061":2}`, false, 0}, // the same name, spelled differently
	{`{"alg":"HS256","x":{},"alg":"none"}`, false, 0},
	{`{"a":1} {"b":2}`, false, 0}, // trailing data
	{`{"a":1`, false, 0},
	{`["a",1]`, false, 0},
	{`null`, false, 0},
	{`"a"`, false, 0},
	{``, false, 0},
}

func TestDecodeObject(t *testing.T) {
	t.Parallel()
	for _, c := range objectCases {
		m, err := wssafe.DecodeObject([]byte(c.in))
		if !c.ok {
			assert.Error(t, err, "%s", c.in)
			continue
		}
		require.NoError(t, err, "%s", c.in)
		assert.Len(t, m, c.len, "%s", c.in)
	}
}

// FuzzDecodeObject checks that decodeObject accepts exactly what the
// token-by-token decoder accepted, with the same members: the header check
// and the subject lookup must not start to disagree with what they used to
// read (or with jwx) about a token.
func FuzzDecodeObject(f *testing.F) {
	for _, c := range objectCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := wssafe.DecodeObject(b)
		want, wantErr := decodeObjectReference(b)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: error %v, reference %v", b, err, wantErr)
		}
		if err != nil {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d members, reference %d", b, len(got), len(want))
		}
		for k, v := range want {
			if !bytes.Equal(got[k], v) {
				t.Fatalf("%q: member %q is %q, reference %q", b, k, got[k], v)
			}
		}
	})
}
