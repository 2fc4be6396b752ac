package wssafe_test

import (
	"math"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// rule returns the rule of a FieldError, or "" for nil.
func rule(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var fe *wssafe.FieldError
	require.ErrorAs(t, err, &fe)
	return fe.Rule
}

func TestLength(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		rule string
	}{
		{"ab", ""},
		{"ééééé", ""}, // 5 runes, 10 bytes
		{"a", "length"},
		{"abcdef", "length"},
		{"\xff\xfe", "utf8"},
		{"ab\x00", ""}, // NUL is a character; refuse it with Chars
	} {
		assert.Equal(t, tc.rule, rule(t, wssafe.Length("name", tc.in, 2, 5)), "%q", tc.in)
	}
}

func TestChars(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		rule string
	}{
		{"Nguyễn Văn A", ""},
		{"nul\x00byte", "chars"},
		{"line\nbreak", "chars"},
		{"esc\x1b[31m", "chars"},
		{"evil\u202etxt.exe", "chars"}, // right-to-left override
		{"zero\u200bwidth", "chars"},
		{"\xc0\xaf", "utf8"}, // overlong encoding of '/'
	} {
		assert.Equal(t, tc.rule, rule(t, wssafe.Chars("name", tc.in, unicode.IsPrint)), "%q", tc.in)
	}
}

func TestPattern(t *testing.T) {
	t.Parallel()
	handle := regexp.MustCompile(`^[a-z][a-z0-9_]{2,15}$`)
	unanchored := regexp.MustCompile(`[a-z]+`)
	assert.NoError(t, wssafe.Pattern("handle", "ann_1", handle))
	assert.Equal(t, "pattern", rule(t, wssafe.Pattern("handle", "Ann", handle)))
	assert.Equal(t, "pattern", rule(t, wssafe.Pattern("handle", "ann\n", handle)), "$ does not match before a final newline in RE2")
	assert.NoError(t, wssafe.Pattern("word", "abc", unanchored))
	assert.Equal(t, "pattern", rule(t, wssafe.Pattern("word", "abc; drop", unanchored)), "a partial match is not a match")
}

func TestRange(t *testing.T) {
	t.Parallel()
	assert.NoError(t, wssafe.Range("age", 13, 13, 130))
	assert.Equal(t, "range", rule(t, wssafe.Range("age", 131, 13, 130)))
	assert.Equal(t, "range", rule(t, wssafe.Range("age", -1, 13, 130)))
	assert.Equal(t, "range", rule(t, wssafe.Range("ratio", math.NaN(), 0, 1)), "NaN is in no range")
	assert.Equal(t, "range", rule(t, wssafe.Range("ratio", math.Inf(1), 0, math.MaxFloat64)))
	assert.NoError(t, wssafe.Range("n", uint8(255), 0, 255))
	assert.NoError(t, wssafe.Range("grade", "b", "a", "c"), "any ordered type")
}

func TestOneOf(t *testing.T) {
	t.Parallel()
	assert.NoError(t, wssafe.OneOf("plan", "pro", "free", "pro"))
	err := wssafe.OneOf("plan", "Pro", "free", "pro")
	assert.Equal(t, "one_of", rule(t, err))
	assert.NotContains(t, err.Error(), "free", "the allowed set is not disclosed")
	assert.Equal(t, "one_of", rule(t, wssafe.OneOf("n", 3, 1, 2)))
}

func TestURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		schemes []string
		rule    string
	}{
		{"https://example.com/a?b=c#d", nil, ""},
		{"HTTPS://example.com", nil, ""},
		{"https://[2001:db8::1]:8443/", nil, ""},
		{"wss://example.com/ws", []string{"wss"}, ""},
		{"http://example.com", nil, "url.scheme"},
		{"javascript:alert(1)", nil, "url.syntax"},
		{"javascript://example.com/%0aalert(1)", []string{"https"}, "url.scheme"},
		{"data:text/html,<script>", []string{"data"}, "url.syntax"},
		{"/relative/path", nil, "url.syntax"},
		{"//example.com/x", nil, "url.syntax"},
		{"https://bank.example@evil.example/", nil, "url.userinfo"},
		{"https://user:pass@example.com/", nil, "url.userinfo"},
		{`https://evil.example\@bank.example/`, nil, "url.syntax"},
		{"https://exa mple.com", nil, "url.syntax"},
		{"https://example.com/\x00", nil, "url.syntax"},
		{"https://example.com\r\nX-Injected: 1", nil, "url.syntax"},
		{"https://раураl.com/", nil, "url.syntax"},
		{"https:///path", nil, "url.host"},
		{"https://:443/", nil, "url.host"},
		{"https://example.com/" + strings.Repeat("a", wssafe.MaxURLLen), nil, "url.length"},
	} {
		assert.Equal(t, tc.rule, rule(t, wssafe.URL("link", tc.in, tc.schemes...)), "%q", tc.in)
	}
}

func TestFieldErrorTextHasNoValue(t *testing.T) {
	t.Parallel()
	const v = "SENTINEL-VALUE"
	for _, err := range []error{
		wssafe.Length("f", v, 1, 2),
		wssafe.Chars("f", v+"\x00", unicode.IsPrint),
		wssafe.Pattern("f", v, regexp.MustCompile(`^x$`)),
		wssafe.OneOf("f", v, "a"),
		wssafe.URL("f", "ftp://"+v),
		wssafe.Email("f", v),
	} {
		require.Error(t, err)
		assert.NotContains(t, err.Error(), v)
	}
}
