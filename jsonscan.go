package wssafe

// The strict JSON scan that JSON, a Router and Integrity start with: one
// pass over the bytes, no allocation per token.

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// scanJSON checks data against l and returns the reply for the first
// violation, or nil. With fold, keys that differ only in case count as
// duplicates: encoding/json matches them to the same struct field.
//
// It accepts exactly what walking data with encoding/json's Decoder.Token
// accepts, and answers the first violation with the same rule: the checks
// run token by token in input order, each when its token is complete.
func scanJSON(data []byte, l JSONLimits, fold bool) *MessageError {
	w := getJSONWork()
	me := w.check(data, l, fold)
	w.put()
	return me
}

// jsonWork is the scratch of strict decoding, pooled: the scanner, and
// the Decoder that decodes what the scanner accepted.
type jsonWork struct {
	sc  jsonScanner
	dec *strictDecoder // nil until needed, or when it was not left clean
}

var jsonWorks = sync.Pool{New: func() any { return new(jsonWork) }}

func getJSONWork() *jsonWork { return jsonWorks.Get().(*jsonWork) }

// check is scanJSON with w's scanner.
func (w *jsonWork) check(data []byte, l JSONLimits, fold bool) *MessageError {
	if !utf8.Valid(data) {
		return &MessageError{Code: CodeInvalidUTF8, Message: "message is not valid UTF-8", Rule: "utf8"}
	}
	sc := &w.sc
	sc.data, sc.l, sc.fold = data, l, fold
	me := sc.scan()
	sc.data = nil
	return me
}

// put resets w and puts it back in the pool, unless its scanner grew
// large: one huge message must not pin its buffers for good.
func (w *jsonWork) put() {
	sc := &w.sc
	if cap(sc.keys) > maxKeptKeyBytes || cap(sc.spans) > maxKeptEntries || len(sc.table.slots) > 2*maxKeptEntries {
		return
	}
	sc.stack, sc.keys, sc.spans, sc.ids = sc.stack[:0], sc.keys[:0], sc.spans[:0], 0
	if sc.table.used > 0 {
		sc.table.clear()
	}
	jsonWorks.Put(w)
}

// keySeed seeds the hash of object keys, so that no client can predict
// which keys collide.
var keySeed = maphash.MakeSeed()

// A scanner whose scratch grew beyond these sizes is not pooled again.
const (
	maxKeptKeyBytes = 64 << 10
	maxKeptEntries  = 4 << 10
)

// A jsonScanner holds the state of one scan.
type jsonScanner struct {
	data  []byte
	l     JSONLimits
	fold  bool
	stack []scanFrame
	keys  []byte    // the keys of the open objects, unescaped (and folded), back to back
	spans []keySpan // where each key is in keys; the innermost object's last
	table keyTable
	ids   uint32 // objects opened so far
}

// scanFrame is one open object or array.
type scanFrame struct {
	n      int    // members or elements so far
	spans  uint32 // in an object: index in spans of its first key
	keys   uint32 // in an object: len(keys) when it opened
	id     uint32 // in an object: tells its keys in the table from others'
	object bool
}

// keySpan is one key of an open object.
type keySpan struct {
	off, n uint32
	owner  uint32 // the id of the object it belongs to
	hash   uint32
}

// An object's first linearKeys keys are checked for duplicates one by one;
// from then on through the table.
const linearKeys = 16

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (sc *jsonScanner) skipSpace(i int) int {
	for i < len(sc.data) && isJSONSpace(sc.data[i]) {
		i++
	}
	return i
}

func syntaxError() *MessageError { return jsonError("syntax", "message is not valid JSON") }

// scan runs the scan over sc.data, which is valid UTF-8.
func (sc *jsonScanner) scan() *MessageError {
	d := sc.data
	i := sc.skipSpace(0)
	if i == len(d) {
		return jsonError("empty", "message is empty")
	}
	for {
		// A value starts at i.
		var me *MessageError
		var opened bool
		if i, opened, me = sc.value(i); me != nil {
			return me
		}
		if opened {
			continue
		}
		// After a value: close containers, or find the next value.
	next:
		i = sc.skipSpace(i)
		if len(sc.stack) == 0 {
			if i < len(d) {
				return jsonError("trailing_data", "message has data after the JSON value")
			}
			return nil
		}
		if i == len(d) {
			return syntaxError()
		}
		top := &sc.stack[len(sc.stack)-1]
		switch c := d[i]; {
		case c == ',':
			i = sc.skipSpace(i + 1)
			if top.object {
				if i, me = sc.member(i); me != nil {
					return me
				}
			}
		case c == '}' && top.object, c == ']' && !top.object:
			sc.pop()
			i++
			goto next
		default:
			return syntaxError()
		}
	}
}

// value scans the value that starts at i (after any space) and returns
// the index after it; for an object or array that is not empty, the
// index where its first value starts (after the first key, in an object),
// and opened. Nesting is never recursion: the stack is sc.stack.
func (sc *jsonScanner) value(i int) (int, bool, *MessageError) {
	d := sc.data
	if i == len(d) {
		return i, false, syntaxError()
	}
	switch c := d[i]; c {
	case '{', '[':
		if me := sc.count(); me != nil {
			return i, false, me
		}
		if len(sc.stack) >= sc.l.MaxDepth {
			return i, false, tooComplex("max_depth", fmt.Sprintf("message nests deeper than %d levels", sc.l.MaxDepth))
		}
		sc.push(c == '{')
		i = sc.skipSpace(i + 1)
		if i < len(d) && d[i] == c+2 { // '}' is '{'+2, ']' is '['+2
			sc.pop()
			return i + 1, false, nil
		}
		if c == '{' {
			i, me := sc.member(i)
			return i, true, me
		}
		return i, true, nil
	case '"':
		end, _, ok := scanString(d, i)
		if !ok {
			return i, false, syntaxError()
		}
		return end, false, sc.count()
	case 't':
		return sc.literal(i, "true")
	case 'f':
		return sc.literal(i, "false")
	case 'n':
		return sc.literal(i, "null")
	default:
		end, ok := scanNumber(d, i)
		if !ok {
			return i, false, syntaxError()
		}
		if end-i > sc.l.MaxNumberLen {
			return i, false, tooComplex("max_number_len", fmt.Sprintf("number is longer than %d characters", sc.l.MaxNumberLen))
		}
		return end, false, sc.count()
	}
}

func (sc *jsonScanner) literal(i int, lit string) (int, bool, *MessageError) {
	if len(sc.data)-i < len(lit) || string(sc.data[i:i+len(lit)]) != lit {
		return i, false, syntaxError()
	}
	return i + len(lit), false, sc.count()
}

// member scans an object's key at i, checks it, and the colon after it,
// and returns the index where the member's value starts.
func (sc *jsonScanner) member(i int) (int, *MessageError) {
	d := sc.data
	if i == len(d) || d[i] != '"' {
		return i, syntaxError()
	}
	end, escaped, ok := scanString(d, i)
	if !ok {
		return i, syntaxError()
	}
	if me := sc.key(d[i+1:end-1], escaped); me != nil {
		return i, me
	}
	i = sc.skipSpace(end)
	if i == len(d) || d[i] != ':' {
		return i, syntaxError()
	}
	return sc.skipSpace(i + 1), nil
}

// count accounts for a value (scalar or container) in the enclosing
// array; a value in an object was counted with its key.
func (sc *jsonScanner) count() *MessageError {
	if len(sc.stack) == 0 {
		return nil
	}
	top := &sc.stack[len(sc.stack)-1]
	if top.object {
		return nil
	}
	top.n++
	if top.n > sc.l.MaxItems {
		return tooComplex("max_items", fmt.Sprintf("array has more than %d items", sc.l.MaxItems))
	}
	return nil
}

func (sc *jsonScanner) push(object bool) {
	f := scanFrame{object: object}
	if object {
		sc.ids++
		f.id, f.spans, f.keys = sc.ids, uint32(len(sc.spans)), uint32(len(sc.keys))
	}
	sc.stack = append(sc.stack, f)
}

func (sc *jsonScanner) pop() {
	f := sc.stack[len(sc.stack)-1]
	sc.stack = sc.stack[:len(sc.stack)-1]
	if f.object {
		sc.spans, sc.keys = sc.spans[:f.spans], sc.keys[:f.keys]
	}
}

// key checks raw, the bytes between a key's quotes, against the innermost
// object's count and its other keys.
func (sc *jsonScanner) key(raw []byte, escaped bool) *MessageError {
	top := &sc.stack[len(sc.stack)-1]
	top.n++
	if top.n > sc.l.MaxKeys {
		return tooComplex("max_keys", fmt.Sprintf("object has more than %d keys", sc.l.MaxKeys))
	}
	off := len(sc.keys)
	sc.keys = sc.appendKey(sc.keys, raw, escaped)
	k := sc.keys[off:]
	span := keySpan{off: uint32(off), n: uint32(len(k)), owner: top.id}
	mine := sc.spans[top.spans:]
	switch {
	case len(mine) < linearKeys:
		for _, s := range mine {
			if s.n == span.n && bytes.Equal(sc.keys[s.off:s.off+s.n], k) {
				return jsonError("duplicate_key", "message has a duplicate key")
			}
		}
	case len(mine) == linearKeys:
		// The object outgrew the linear check: index the keys it has.
		for j := range mine {
			mine[j].hash = sc.keyHash(sc.keys[mine[j].off:mine[j].off+mine[j].n], top.id)
			sc.table.insert(sc, int(top.spans)+j)
		}
		fallthrough
	default:
		span.hash = sc.keyHash(k, top.id)
		if sc.table.contains(sc, span, k) {
			return jsonError("duplicate_key", "message has a duplicate key")
		}
	}
	sc.spans = append(sc.spans, span)
	if len(mine) >= linearKeys {
		sc.table.insert(sc, len(sc.spans)-1)
	}
	return nil
}

func (sc *jsonScanner) keyHash(k []byte, owner uint32) uint32 {
	h := maphash.Bytes(keySeed, k) ^ uint64(owner)*0x9e3779b97f4a7c15
	return uint32(h ^ h>>32)
}

// appendKey appends to dst the key whose raw bytes are raw: unescaped as
// encoding/json unescapes a string, and, with sc.fold, folded: two keys
// fold alike exactly when encoding/json would match them to the same
// struct field (ASCII case and Unicode simple case folding).
func (sc *jsonScanner) appendKey(dst, raw []byte, escaped bool) []byte {
	start := len(dst)
	if escaped {
		dst = appendUnquoted(dst, raw)
	} else {
		dst = append(dst, raw...)
	}
	if !sc.fold {
		return dst
	}
	k := dst[start:]
	for j, c := range k {
		if c >= utf8.RuneSelf {
			return foldRunes(dst, start+j)
		}
		if 'a' <= c && c <= 'z' { // ASCII letters fold to upper case
			k[j] = c - ('a' - 'A')
		}
	}
	return dst
}

// foldRunes folds dst[from:] in place, rune by rune: a rune folds to the
// smallest of its orbit, which is never longer in UTF-8, so the writes
// never overtake the reads.
func foldRunes(dst []byte, from int) []byte {
	w := from
	for r := from; r < len(dst); {
		c, n := utf8.DecodeRune(dst[r:])
		r += n
		w += utf8.EncodeRune(dst[w:], foldRune(c))
	}
	return dst[:w]
}

// foldRune returns the smallest rune of r's simple case-folding orbit
// (unicode.SimpleFold), the same for every rune of the orbit.
func foldRune(r rune) rune {
	for {
		f := unicode.SimpleFold(r)
		if f <= r {
			return f
		}
		r = f
	}
}

// scanString scans the string whose opening quote is at d[i] and returns
// the index after its closing quote, and whether it has escapes. It
// accepts what encoding/json's scanner accepts; d is valid UTF-8.
func scanString(d []byte, i int) (end int, escaped, ok bool) {
	for i++; i < len(d); i++ {
		if plainStringByte[d[i]] {
			continue
		}
		switch c := d[i]; {
		case c == '"':
			return i + 1, escaped, true
		case c == '\\':
			escaped = true
			i++
			if i == len(d) {
				return i, escaped, false
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(d) || !isHex(d[i+1]) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) {
					return i, escaped, false
				}
				i += 4
			default:
				return i, escaped, false
			}
		default: // a control character
			return i, escaped, false
		}
	}
	return i, escaped, false
}

// plainStringByte tells the bytes that stand for themselves in a string.
var plainStringByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= ' ' && c != '"' && c != '\\'
	}
	return t
}()

// scanNumber scans the number that starts at d[i] and returns the index
// after it; a number ends at the first byte that cannot continue it, as in
// encoding/json's scanner.
func scanNumber(d []byte, i int) (int, bool) {
	digits := func(i int) int {
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		return i
	}
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i == len(d):
		return i, false
	case d[i] == '0':
		i++
	case '1' <= d[i] && d[i] <= '9':
		i = digits(i + 1)
	default:
		return i, false
	}
	if i < len(d) && d[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

// appendUnquoted appends the string whose raw bytes (between the quotes,
// accepted by scanString) are s, unescaped as encoding/json's unquote
// does: a \u escape of a lone or mismatched surrogate becomes U+FFFD.
func appendUnquoted(dst, s []byte) []byte {
	for r := 0; r < len(s); {
		c := s[r]
		if c != '\\' {
			dst = append(dst, c)
			r++
			continue
		}
		r++
		switch s[r] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			rr := getu4(s[r-1:])
			r += 5
			if utf16.IsSurrogate(rr) {
				if dec := utf16.DecodeRune(rr, getu4(s[r:])); dec != unicode.ReplacementChar {
					dst = utf8.AppendRune(dst, dec)
					r += 6
					continue
				}
				rr = unicode.ReplacementChar
			}
			dst = utf8.AppendRune(dst, rr)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, s[r])
		}
		r++
	}
	return dst
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// keyTable indexes the keys of objects with more than linearKeys keys:
// open addressing over indexes into the scanner's spans. A slot whose span
// was popped, or reused by another object's key, is stale: lookups pass
// over it, inserts may take it.
type keyTable struct {
	slots []keySlot // a power of two long, or empty
	used  int       // slots not empty
	spare []keySlot // grow's scratch
}

type keySlot struct {
	span  uint32 // index in spans plus one; zero: empty
	owner uint32
}

func (t *keyTable) clear() {
	clear(t.slots)
	t.used = 0
}

func (t *keyTable) live(sc *jsonScanner, s keySlot) bool {
	return s.span != 0 && int(s.span) <= len(sc.spans) && sc.spans[s.span-1].owner == s.owner
}

// contains reports whether the object span belongs to already has the key k.
func (t *keyTable) contains(sc *jsonScanner, span keySpan, k []byte) bool {
	if len(t.slots) == 0 {
		return false
	}
	mask := uint32(len(t.slots) - 1)
	for p := span.hash & mask; ; p = (p + 1) & mask {
		s := t.slots[p]
		if s.span == 0 {
			return false
		}
		if s.owner == span.owner && t.live(sc, s) {
			o := sc.spans[s.span-1]
			if o.hash == span.hash && bytes.Equal(sc.keys[o.off:o.off+o.n], k) {
				return true
			}
		}
	}
}

// insert adds spans[j], whose hash is set, to the table.
func (t *keyTable) insert(sc *jsonScanner, j int) {
	if 2*(t.used+1) > len(t.slots) {
		t.grow(sc)
	}
	t.put(sc, keySlot{span: uint32(j) + 1, owner: sc.spans[j].owner})
}

func (t *keyTable) put(sc *jsonScanner, s keySlot) {
	mask := uint32(len(t.slots) - 1)
	for p := sc.spans[s.span-1].hash & mask; ; p = (p + 1) & mask {
		switch old := t.slots[p]; {
		case old.span == 0:
			t.used++
			t.slots[p] = s
			return
		case !t.live(sc, old):
			t.slots[p] = s
			return
		}
	}
}

// grow rehashes the live slots into a table at least four times their
// number, reusing the table when it is large enough.
func (t *keyTable) grow(sc *jsonScanner) {
	t.spare = t.spare[:0]
	for _, s := range t.slots {
		if t.live(sc, s) {
			t.spare = append(t.spare, s)
		}
	}
	n := max(64, len(t.slots))
	for n < 4*(len(t.spare)+1) {
		n *= 2
	}
	if n > len(t.slots) {
		t.slots = make([]keySlot, n)
	} else {
		clear(t.slots)
	}
	t.used = 0
	for _, s := range t.spare {
		t.put(sc, s)
	}
}
