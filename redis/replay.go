package redis

// replayWindowSize is how far behind the highest sequence number seen an
// envelope may arrive and still be accepted once: sharded channels are
// delivered over separate connections, so one node's envelopes reorder.
const replayWindowSize = 1024

// A replayWindow is the IPsec-style anti-replay window (RFC 4303, 3.4.3)
// of one sender boot: the highest sequence number accepted and a bitmap of
// the replayWindowSize numbers below it. Bit d of the bitmap stands for
// sequence number top-d. Not safe for concurrent use.
type replayWindow struct {
	top   uint64
	bits  [replayWindowSize / 64]uint64
	maxTs int64 // the newest timestamp accepted, for pruning
}

// accept reports whether seq is new, and records it. Zero is never valid:
// senders start at one.
func (w *replayWindow) accept(seq uint64) bool {
	if seq == 0 {
		return false
	}
	if seq > w.top {
		w.shift(seq - w.top)
		w.top = seq
		w.bits[0] |= 1
		return true
	}
	d := w.top - seq
	if d >= replayWindowSize {
		return false // too old to tell: refused, as IPsec does
	}
	word, bit := d/64, uint64(1)<<(d%64)
	if w.bits[word]&bit != 0 {
		return false
	}
	w.bits[word] |= bit
	return true
}

// shift moves the bitmap n places towards older offsets.
func (w *replayWindow) shift(n uint64) {
	if n >= replayWindowSize {
		w.bits = [replayWindowSize / 64]uint64{}
		return
	}
	words, bits := int(n/64), n%64
	for i := len(w.bits) - 1; i >= 0; i-- {
		var v uint64
		if j := i - words; j >= 0 {
			v = w.bits[j] << bits
			if bits != 0 && j > 0 {
				v |= w.bits[j-1] >> (64 - bits)
			}
		}
		w.bits[i] = v
	}
}
