package redis

// Payloads: what an envelope carries, in a length-prefixed binary form.

import (
	"encoding/binary"
	"errors"
	"time"
)

// A publication is the wire form of the core's Publication: a topic's
// subscribers, a subject's sessions, or everyone.
type publication struct {
	Topic   string
	Subject string
	Type    uint8 // the core's MessageType
	Data    []byte
}

// A controlOp is the wire form of the core's ControlOp.
type controlOp struct {
	Kind      uint8 // the core's ControlKind
	Subject   string
	SessionID string
	Code      uint16
	Reason    string
	Before    time.Time     // a revocation: tokens issued before are refused
	TTL       time.Duration // a revocation: how long its record lives
}

// An interest message tells the other nodes which topics this node has
// subscribers for. The interest table is built from them.
type interest struct {
	Op     interestOp
	Topics []string
}

type interestOp uint8

const (
	interestSubscribe   interestOp = iota + 1 // Topics gained a first local subscriber
	interestUnsubscribe                       // Topics lost their last local subscriber
	interestFull                              // Topics is one chunk of the full set (first chunk: Reset)
	interestFullReset                         // the first chunk of a full set: replaces what was known
	interestSync                              // a full set follows; every receiver answers with its own
	interestLeave                             // this node leaves the cluster: forget its topics
	interestMax
)

var errPayload = errors.New("wssafe/redis: malformed payload")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader consumes a payload; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errPayload
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errPayload
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string { return string(r.bytes()) }

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errPayload
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// done is the reader's error, or errPayload when bytes are left over.
func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		return errPayload
	}
	return r.err
}

func (p publication) append(b []byte) []byte {
	b = appendString(b, p.Topic)
	b = appendString(b, p.Subject)
	b = append(b, p.Type)
	return append(b, p.Data...)
}

func decodePublication(b []byte) (publication, error) {
	r := reader{b: b}
	p := publication{Topic: r.string(), Subject: r.string(), Type: r.byte()}
	if r.err != nil {
		return p, r.err
	}
	p.Data = r.b
	if p.Topic != "" && p.Subject != "" {
		return p, errPayload
	}
	return p, nil
}

func (op controlOp) append(b []byte) []byte {
	b = append(b, op.Kind)
	b = appendString(b, op.Subject)
	b = appendString(b, op.SessionID)
	b = binary.AppendUvarint(b, uint64(op.Code))
	b = appendString(b, op.Reason)
	var before int64
	if !op.Before.IsZero() {
		before = op.Before.UnixNano()
	}
	b = binary.AppendVarint(b, before)
	return binary.AppendVarint(b, int64(op.TTL))
}

func decodeControl(b []byte) (controlOp, error) {
	r := reader{b: b}
	op := controlOp{Kind: r.byte(), Subject: r.string(), SessionID: r.string()}
	code := r.uvarint()
	op.Reason = r.string()
	if r.err != nil || code > 0xffff {
		return op, errPayload
	}
	op.Code = uint16(code)
	before, n := binary.Varint(r.b)
	if n <= 0 {
		return op, errPayload
	}
	r.b = r.b[n:]
	ttl, n := binary.Varint(r.b)
	if n <= 0 || n != len(r.b) || ttl < 0 {
		return op, errPayload
	}
	if before != 0 {
		op.Before = time.Unix(0, before)
	}
	op.TTL = time.Duration(ttl)
	return op, nil
}

func (in interest) append(b []byte) []byte {
	b = append(b, byte(in.Op))
	b = binary.AppendUvarint(b, uint64(len(in.Topics)))
	for _, t := range in.Topics {
		b = appendString(b, t)
	}
	return b
}

func decodeInterest(b []byte) (interest, error) {
	r := reader{b: b}
	in := interest{Op: interestOp(r.byte())}
	n := r.uvarint()
	if r.err != nil || in.Op == 0 || in.Op >= interestMax || n > uint64(len(r.b)) {
		return in, errPayload
	}
	in.Topics = make([]string, 0, n)
	for range n {
		in.Topics = append(in.Topics, r.string())
	}
	return in, r.done()
}
