package redis

import (
	"reflect"
	"testing"
	"time"
)

func TestPayloadRoundTrip(t *testing.T) {
	p := publication{Topic: "room:1", Type: 1, Data: []byte("hi")}
	if got, err := decodePublication(p.append(nil)); err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("publication: %+v, %v", got, err)
	}
	op := controlOp{Kind: 3, Subject: "alice", Code: 3003, Reason: "forbidden", Before: time.Unix(5, 6), TTL: time.Hour}
	if got, err := decodeControl(op.append(nil)); err != nil || !reflect.DeepEqual(got, op) {
		t.Fatalf("control: %+v, %v", got, err)
	}
	in := interest{Op: interestFullReset, Topics: []string{"a", "b"}}
	if got, err := decodeInterest(in.append(nil)); err != nil || !reflect.DeepEqual(got, in) {
		t.Fatalf("interest: %+v, %v", got, err)
	}
	if _, err := decodePublication(publication{Topic: "t", Subject: "s"}.append(nil)); err == nil {
		t.Fatal("a publication to both a topic and a subject was accepted")
	}
}

// FuzzPayloads: no payload panics the decoders, and what decodes encodes
// back to the same bytes.
func FuzzPayloads(f *testing.F) {
	f.Add(publication{Topic: "t", Data: []byte("x")}.append(nil))
	f.Add(controlOp{Kind: 1, Subject: "s", Before: time.Unix(1, 0), TTL: 1}.append(nil))
	f.Add(interest{Op: interestSubscribe, Topics: []string{"t"}}.append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Varints may be overlong on the wire: compare values, not bytes.
		if p, err := decodePublication(b); err == nil {
			if q, err := decodePublication(p.append(nil)); err != nil || !reflect.DeepEqual(p, q) {
				t.Fatal("publication does not round-trip")
			}
		}
		if op, err := decodeControl(b); err == nil {
			if q, err := decodeControl(op.append(nil)); err != nil || !reflect.DeepEqual(op, q) {
				t.Fatal("control does not round-trip")
			}
		}
		if in, err := decodeInterest(b); err == nil {
			if q, err := decodeInterest(in.append(nil)); err != nil || !reflect.DeepEqual(in, q) {
				t.Fatal("interest does not round-trip")
			}
		}
	})
}
