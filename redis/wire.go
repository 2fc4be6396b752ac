package redis

// The wiring: *Backplane as a wssafe.Backplane, mapping the core's
// Publication and ControlOp to their wire forms and back.

import (
	"errors"

	"github.com/wssafe/wssafe"
)

var _ wssafe.Backplane = (*Backplane)(nil)

// Start connects the backplane to n, the Endpoint's side: what other
// nodes send is delivered through it. wssafe.New calls it once; it returns
// at once and connects in the background.
func (b *Backplane) Start(n *wssafe.Node) error {
	if n == nil {
		return errors.New("wssafe/redis: Start needs the Endpoint's Node")
	}
	return b.start(nodeSink{n}, n.Topics(), func() {
		b.node = n
		if b.ownLog {
			b.log = n.Logger()
		}
	})
}

// Publish sends p to the other nodes: those with a subscriber for
// p.Topic, or every node for a subject or everyone. It never blocks; a
// publication it cannot send (Redis unreachable, the outbound queue full)
// is dropped, counted and [wssafe.ErrDropped] returned.
func (b *Backplane) Publish(p wssafe.Publication) error {
	if err := b.publish(publication{Topic: p.Topic, Subject: p.Subject, Type: uint8(p.Type), Data: p.Data}); err != nil {
		return wssafe.ErrDropped
	}
	return nil
}

// Control sends op to every other node. It is kept while Redis is
// unreachable (up to MaxPendingControls) and sent on recovery; a
// revocation is also stored until op.Before + op.TTL, for nodes that start
// later or were down.
func (b *Backplane) Control(op wssafe.ControlOp) error {
	return b.control(controlOp{
		Kind: wireKind(op.Kind), Subject: op.Subject, SessionID: op.SessionID,
		Code: uint16(op.Code), Reason: op.Reason, Before: op.Before, TTL: op.TTL,
	})
}

// wireKind maps the core's ControlKind to the wire's; an unknown kind is
// zero, which receivers refuse as malformed.
func wireKind(k wssafe.ControlKind) uint8 {
	switch k {
	case wssafe.ControlCloseSubject:
		return ctlCloseSubject
	case wssafe.ControlCloseSession:
		return ctlCloseSession
	case wssafe.ControlRevoke:
		return ctlRevoke
	}
	return 0
}

// coreKind is wireKind's inverse; zero for an unknown wire kind, which
// the Node refuses as malformed.
func coreKind(k uint8) wssafe.ControlKind {
	switch k {
	case ctlCloseSubject:
		return wssafe.ControlCloseSubject
	case ctlCloseSession:
		return wssafe.ControlCloseSession
	case ctlRevoke:
		return wssafe.ControlRevoke
	}
	return 0
}

// nodeSink delivers to the core's Node.
type nodeSink struct{ n *wssafe.Node }

func (s nodeSink) deliver(p publication) {
	s.n.Deliver(wssafe.Publication{Topic: p.Topic, Subject: p.Subject, Type: wssafe.MessageType(p.Type), Data: p.Data})
}

func (s nodeSink) control(op controlOp) {
	s.n.Control(wssafe.ControlOp{
		Kind: coreKind(op.Kind), Subject: op.Subject, SessionID: op.SessionID,
		Code: wssafe.StatusCode(op.Code), Reason: op.Reason, Before: op.Before, TTL: op.TTL,
	})
}
