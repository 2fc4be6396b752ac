package wssafe

import (
	"fmt"
	"strings"
	"testing"
)

// sameVerdict fails unless scanJSON and the Decoder-based reference agree
// on data: both accept it, or both refuse it with the same reply.
func sameVerdict(t *testing.T, data []byte, l JSONLimits, fold bool) {
	t.Helper()
	got, want := scanJSON(data, l, fold), scanJSONDecoder(data, l, fold)
	if (got == nil) != (want == nil) || got != nil && *got != *want {
		t.Fatalf("scan of %q (limits %+v, fold %v) = %v, the Decoder's = %v", data, l, fold, got, want)
	}
}

// bigObject returns an object with n keys named by name(i).
func bigObject(n int, name func(i int) string, value string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q:%s", name(i), value)
	}
	return b.String() + "}"
}

var scanSeeds = func() []string {
	k := func(i int) string { return fmt.Sprintf("k%d", i) }
	upper := func(i int) string { return fmt.Sprintf("K%d", i) }
	seeds := []string{
		``, ` `, `{}`, `[]`, `{"a":[1,{"b":null}]}`, `[[[[[]]]]]`, `{"a":1,"a":2}`, `{"a":1,"A":2}`,
		`1e999`, "\"\xff\"", `{} {}`, `01`, `-01`, `[01]`, `1x`, `[1x`, `truex`, `[tru`, `nul`, `[1.`, `-`,
		`{"a" 1}`, `{"a":1,}`, `[1,]`, `[,1]`, `{1:2}`, `{"a":1 "b":2}`, `{"a"`, `{"a":1,"a"`,
		`{"a":"\u0000"}`, `{"a":1,"\u0061":2}`, `{"\u0074ype":1,"type":2}`, `{"\ud800":1,"\udc00":2}`,
		`{"\ud800\udc00":1,"𐀀":2}`, `{"\ud800\u0041":1,"\ufffdA":2}`, `{"\uD83D\uDE00":1,"😀":2}`,
		"{\"k\":1,\"\u212a\":2}", "{\"s\":1,\"\u017f\":2}", "{\"ß\":1,\"\u1e9e\":2}", `{"\/":1,"/":2}`,
		`{"a\"b":1,"a\u0022b":2}`, `{"\b\f\n\r\t":1,"\u0008\u000C\u000a\u000D\u0009":2}`, `"\x"`, `"\u12"`,
		`"\u12g4"`, "\"a\tb\"", "\ufeff{}", `[1,2,3,4,5]`, `{"a":{"b":{"c":{"d":{}}}}}`, `123456789`,
		`[` + strings.Repeat("1", 100) + `]`, `[` + strings.Repeat("1", 100) + `.]`, `[` + strings.Repeat("1", 100) + `x`,
		bigObject(40, k, "1"),
		bigObject(40, k, "1") + "x",
		strings.TrimSuffix(bigObject(40, k, "1"), "}") + `,"k30":2}`,
		strings.TrimSuffix(bigObject(40, k, "1"), "}") + `,"K30":2}`,
		strings.TrimSuffix(bigObject(40, k, "1"), "}") + `,"k\u0033\u0030":2}`,
		strings.TrimSuffix(bigObject(40, k, "1"), "}") + `,"k3":2}`,
		bigObject(40, k, bigObject(20, upper, "[]")),
		"[" + bigObject(20, k, "1") + "," + bigObject(20, k, "1") + "]",
	}
	return seeds
}()

// FuzzScanJSONDifferential compares the single-pass scanner with the
// Decoder.Token walk it replaced, under limits and folding chosen by the
// fuzzer (a zero limit means the default).
func FuzzScanJSONDifferential(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s), uint8(0), uint8(0), uint8(0), uint8(0), true)
		f.Add([]byte(s), uint8(3), uint8(3), uint8(3), uint8(3), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, depth, keys, items, numLen uint8, fold bool) {
		l := JSONLimits{MaxDepth: int(depth), MaxKeys: int(keys), MaxItems: int(items), MaxNumberLen: int(numLen)}.resolve()
		sameVerdict(t, data, l, fold)
	})
}

// The seeds, and objects large enough for the scanner's key table, under
// default, small and generous limits.
func TestScanJSONMatchesDecoder(t *testing.T) {
	t.Parallel()
	k := func(i int) string { return fmt.Sprintf("key%d", i) }
	inputs := append([]string(nil), scanSeeds...)
	for _, n := range []int{15, 16, 17, 200, 256, 257, 1000} {
		inputs = append(inputs, bigObject(n, k, "0"))
		for _, dup := range []string{"key0", "KEY15", "key16", "key199", "Key255", "key256", "k\\u0065y999"} {
			inputs = append(inputs, strings.TrimSuffix(bigObject(n, k, "0"), "}")+`,"`+dup+`":1}`)
		}
		// Objects in objects, each large, with the same keys: no duplicates.
		if n <= 257 {
			inputs = append(inputs, bigObject(n, k, bigObject(20, k, `{"key0":null,"KEY1":null}`)))
		}
		// Big objects closed and opened again, so that the table holds stale keys.
		many := make([]string, 20)
		for i := range many {
			many[i] = bigObject(n%40+17, k, "[]")
		}
		inputs = append(inputs, "["+strings.Join(many, ",")+"]")
		inputs = append(inputs, "["+strings.Join(many, ",")+`,{"a":1,"a":2}]`)
	}
	limits := []JSONLimits{
		{},
		{MaxDepth: 2, MaxKeys: 3, MaxItems: 3, MaxNumberLen: 2},
		{MaxDepth: 1 << 20, MaxKeys: 1 << 20, MaxItems: 1 << 20, MaxNumberLen: 1 << 20},
	}
	for _, in := range inputs {
		for _, l := range limits {
			for _, fold := range []bool{true, false} {
				sameVerdict(t, []byte(in), l.resolve(), fold)
			}
		}
	}
}

// A scan allocates nothing beyond its reply, whatever the message's shape.
func TestScanJSONAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop scanners")
	}
	k := func(i int) string { return fmt.Sprintf("K\\u00e9y\u212a%d", i) }
	for _, in := range []string{
		`{"type":"say","room":"lobby","text":"hello, world"}`,
		bigObject(100, k, bigObject(30, k, `[1,2.5,"x",true,null]`)),
	} {
		data := []byte(in)
		l := JSONLimits{}.resolve()
		if me := scanJSON(data, l, true); me != nil {
			t.Fatalf("scan of %q: %v", in, me)
		}
		if n := testing.AllocsPerRun(100, func() { scanJSON(data, l, true) }); n != 0 {
			t.Errorf("scan of a %d-byte message: %v allocations", len(data), n)
		}
	}
}

// One pooled Decoder decodes message after message: what one message held
// after its value never reaches the next, and an error leaves the next
// decode as it would be on a fresh Decoder.
func TestStrictDecoderReuse(t *testing.T) {
	type msg struct {
		A int    `json:"a"`
		B string `json:"b"`
	}
	w := new(jsonWork)
	decode := func(in string) (msg, *MessageError) {
		var v msg
		return v, w.decode([]byte(in), &v)
	}
	for i, tc := range []struct {
		in   string
		want msg
		rule string
	}{
		{`{"a":1}`, msg{A: 1}, ""},
		{" {\"b\":\"x\"} \n\t", msg{B: "x"}, ""},
		{`{"a":2,"zz":1}`, msg{A: 2}, "unknown_field"},
		{`{"a":"3"}`, msg{}, "type"},
		{`{"a":4}`, msg{A: 4}, ""},
		{`{"a":5} {"a":6}`, msg{A: 5}, "trailing_data"}, // never so after scanJSON: the Decoder is dropped
		{`{"a":7}`, msg{A: 7}, ""},
		{`7`, msg{}, "type"},
		{`{"b":"` + strings.Repeat("y", maxPooledDecode) + `"}`, msg{B: strings.Repeat("y", maxPooledDecode)}, ""},
		{`{"a":8}  `, msg{A: 8}, ""},
		{`{"a":`, msg{}, "decode"}, // a syntax error, never so after scanJSON: the Decoder is dropped
		{`{"a":9}`, msg{A: 9}, ""},
	} {
		got, me := decode(tc.in)
		rule := ""
		if me != nil {
			rule = me.Rule
		}
		if rule != tc.rule || got != tc.want {
			t.Fatalf("message %d %.40q: got %+v, %v; want %+v, rule %q", i, tc.in, got, me, tc.want, tc.rule)
		}
	}
}

// Router and Integrity decode through the same pooled Decoders as JSON:
// many messages in turn, on several goroutines, each get their own value.
func TestStrictDecodeConcurrent(t *testing.T) {
	type msg struct {
		N int `json:"n"`
	}
	done := make(chan error)
	for g := range 4 {
		go func() {
			for i := range 500 {
				n := g*1000 + i
				v, err := decodeJSON[msg](fmt.Appendf(nil, `{"n":%d}%s`, n, strings.Repeat(" ", i%3)), JSONLimits{}.resolve())
				if err != nil || v.N != n {
					done <- fmt.Errorf("decoded %d as %+v, %v", n, v, err)
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
