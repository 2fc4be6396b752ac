package wssafe

// Where a token comes from (header, subprotocol, cookie, query, first
// message) and its syntax checks before verification.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Subprotocol entry prefixes that carry a token.
const (
	bearerProtocolPrefix = "bearer."
	k8sProtocolPrefix    = "base64url.bearer.authorization.k8s.io."
)

var (
	errAmbiguousToken = errors.New("wssafe: more than one token in one source")
	errTokenSyntax    = errors.New("wssafe: token is not a compact JWS")
	errNotObject      = errors.New("wssafe: not a JSON object")
	errDuplicateName  = errors.New("wssafe: duplicate JSON member")
)

// handshakeToken returns the token the handshake carries in the first
// enabled source that has one, and that source's name. It returns a nil
// token and no error when no enabled source has one.
func (a *authenticator) handshakeToken(r *http.Request) ([]byte, string, error) {
	if queryHasToken(r.URL.RawQuery, a.query) {
		// Refused out loud, even beside a good token: the client leaks its
		// token into every access log on the way, and should learn so now.
		return nil, "query", invalidToken("query_token", nil)
	}
	type source struct {
		on   bool
		name string
		get  func() (string, bool, error)
	}
	for _, src := range [...]source{
		{a.sources&FromHeader != 0, "header", func() (string, bool, error) { return bearerToken(r.Header.Values("Authorization")) }},
		{a.sources&FromSubprotocol != 0, "subprotocol", func() (string, bool, error) {
			return subprotocolsToken(r.Header.Values("Sec-WebSocket-Protocol"))
		}},
		{a.cookie != "", "cookie", func() (string, bool, error) { return cookieToken(r, a.cookie) }},
		{a.query != "", "query", func() (string, bool, error) { return single(r.URL.Query()[a.query]) }},
	} {
		if !src.on {
			continue
		}
		tok, ok, err := src.get()
		if err != nil {
			return nil, src.name, err
		}
		if ok {
			return []byte(tok), src.name, checkTokenSyntax(tok)
		}
	}
	return nil, "", nil
}

// queryParams are the names a client would put a token under in a URL
// (RFC 6750 section 2.3 names access_token), as queryParamKey folds them.
var queryParams = [...]string{"accesstoken", "token", "jwt", "idtoken", "authtoken", "refreshtoken", "bearer", "authorization"}

// queryHasToken reports whether the raw query carries a token parameter
// that is not the enabled one (allowed, "" for none). Names are compared
// as servers and proxies may read them, not only as net/http does: without
// case, "_", "-" or other punctuation (Access_Token, ACCESS-TOKEN,
// access_token[]), percent-decoded (access%5Ftoken), and with ";" as a
// separator too, which net/http drops (?a=1;access_token=x) while other
// stacks split on it. The enabled name is accepted only spelled exactly
// and where net/http reads it; another spelling of it, or a pair net/http
// ignores, is a second token some other layer may read: refused too.
func queryHasToken(rawQuery, allowed string) bool {
	for rawQuery != "" {
		var seg string
		seg, rawQuery, _ = strings.Cut(rawQuery, "&")
		unseen := strings.Contains(seg, ";") // net/http skips the whole segment
		for seg != "" {
			var pair string
			pair, seg, _ = strings.Cut(seg, ";")
			name, _, _ := strings.Cut(pair, "=")
			name = unescapeLenient(name)
			if allowed != "" && name == allowed && !unseen {
				continue
			}
			key := queryParamKey(name)
			if allowed != "" && key == queryParamKey(allowed) {
				return true
			}
			for _, p := range queryParams {
				if key == p {
					return true
				}
			}
		}
	}
	return false
}

// queryParamKey folds a parameter name to its ASCII letters and digits,
// lower case.
func queryParamKey(name string) string {
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			b = append(b, c)
		case 'A' <= c && c <= 'Z':
			b = append(b, c+'a'-'A')
		}
	}
	return string(b)
}

// unescapeLenient decodes a query component as url.QueryUnescape does
// ("+" is a space, %XX a byte) but keeps a malformed escape as it is,
// where QueryUnescape fails and a lenient server decodes the rest.
func unescapeLenient(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// bearerToken extracts an RFC 6750 Bearer token from Authorization header
// values. Another scheme is not a token for us; two headers are ambiguous.
func bearerToken(values []string) (string, bool, error) {
	if len(values) == 0 {
		return "", false, nil
	}
	if len(values) > 1 {
		return "", false, errAmbiguousToken
	}
	scheme, rest, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false, nil
	}
	tok := strings.TrimLeft(rest, " ")
	if tok == "" {
		return "", false, errTokenSyntax
	}
	return tok, true, nil
}

// subprotocolsToken finds the one token entry among Sec-WebSocket-Protocol
// header values.
func subprotocolsToken(values []string) (string, bool, error) {
	var found []string
	for _, v := range values {
		for _, entry := range strings.Split(v, ",") {
			if tok, ok := subprotocolToken(strings.TrimSpace(entry)); ok {
				found = append(found, tok)
			}
		}
	}
	if len(found) == 0 {
		return "", false, nil
	}
	if len(found) > 1 {
		return "", false, errAmbiguousToken
	}
	if found[0] == "" {
		return "", false, errTokenSyntax
	}
	return found[0], true, nil
}

// subprotocolToken returns the token a single subprotocol entry carries.
// An undecodable Kubernetes-style entry yields an empty token.
func subprotocolToken(entry string) (string, bool) {
	if hasPrefixFold(entry, bearerProtocolPrefix) {
		return entry[len(bearerProtocolPrefix):], true
	}
	if hasPrefixFold(entry, k8sProtocolPrefix) {
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(entry[len(k8sProtocolPrefix):], "="))
		if err != nil {
			return "", true
		}
		return string(b), true
	}
	return "", false
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// cookieToken reads the named cookie. Two cookies of that name (one may
// have been planted by a sibling subdomain) are ambiguous.
func cookieToken(r *http.Request, name string) (string, bool, error) {
	var vals []string
	for _, c := range r.CookiesNamed(name) {
		vals = append(vals, c.Value)
	}
	return single(vals)
}

func single(vals []string) (string, bool, error) {
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
		return vals[0], true, nil
	}
	return "", false, errAmbiguousToken
}

// firstMessageToken extracts the token from the first message: a text
// message holding the compact JWT, surrounding whitespace ignored.
func firstMessageToken(typ MessageType, data []byte) ([]byte, error) {
	if typ != MessageText {
		return nil, errTokenSyntax
	}
	tok := bytes.TrimSpace(data)
	return tok, checkTokenSyntax(string(tok))
}

// checkTokenSyntax accepts only the compact JWS alphabet (base64url and
// two dots), so nothing else reaches the parser or a log.
func checkTokenSyntax(tok string) error {
	if tok == "" || strings.Count(tok, ".") != 2 {
		return errTokenSyntax
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return errTokenSyntax
		}
	}
	return nil
}

// splitToken decodes the header and payload of a compact JWS with three
// segments, the first two non-empty. An empty signature is left to the
// header check and to verification, so that RFC 7519's unsecured JWT (alg
// none, empty signature: what attack tools send) is reported as alg_none.
func splitToken(raw []byte) (header, payload []byte, err error) {
	if err := checkTokenSyntax(string(raw)); err != nil {
		return nil, nil, err
	}
	parts := bytes.Split(raw, []byte("."))
	for _, p := range parts[:2] {
		if len(p) == 0 {
			return nil, nil, errTokenSyntax
		}
	}
	if header, err = decodeSegment(parts[0]); err != nil {
		return nil, nil, err
	}
	if payload, err = decodeSegment(parts[1]); err != nil {
		return nil, nil, err
	}
	// The signature must be canonical base64url too: jwx decodes it
	// leniently, so "...cvIY" and "...cvIZ" would carry the same bytes and
	// one token would have several spellings, each slipping past a deny
	// list or replay cache keyed by the token string.
	if _, err = decodeSegment(parts[2]); err != nil {
		return nil, nil, err
	}
	return header, payload, nil
}

func decodeSegment(seg []byte) ([]byte, error) {
	out := make([]byte, base64.RawURLEncoding.DecodedLen(len(seg)))
	n, err := base64.RawURLEncoding.Strict().Decode(out, seg)
	return out[:n], err
}

// decodeObject decodes a JSON object into its raw members, refusing
// duplicate names: two parsers that pick different duplicates would
// disagree about what was signed. encoding/json keeps the last of two
// members with the same (decoded) name, so a duplicate shows as fewer map
// entries than the object has members. One Unmarshal and one pass over the
// bytes cost a fraction of a Decoder's token-by-token walk, which was most
// of what wssafe itself allocated per verified token.
func decodeObject(b []byte) (map[string]json.RawMessage, error) {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 || b[0] != '{' {
		return nil, errNotObject
	}
	// Unmarshal checks that all of b is valid JSON before it decodes, so
	// countMembers walks a valid object.
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if len(m) != countMembers(b) {
		return nil, errDuplicateName
	}
	return m, nil
}

// countMembers returns the number of members of the JSON object b, which
// must be valid JSON: the name separators (colons) at the object's own
// level, outside strings.
func countMembers(b []byte) int {
	n, depth, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString && c == '\\':
			i++ // the escaped character, which may be a quote
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == ':' && depth == 1:
			n++
		}
	}
	return n
}

// jsonString decodes member name of m into s; a missing or non-string
// member is an error.
func jsonString(m map[string]json.RawMessage, name string, s *string) error {
	v, ok := m[name]
	if !ok {
		return errNotObject
	}
	return json.Unmarshal(v, s)
}

var (
	errNoSubject   = errors.New("wssafe: token has no subject")
	errNumericDate = errors.New("wssafe: claim is not a NumericDate")
	errStringClaim = errors.New("wssafe: claim is not a string")
)

// subjectOf returns the first subject claim present with a non-empty
// string or an integer value, in its exact text: user IDs above 2^53 are
// not rounded through float64.
func subjectOf(payload []byte, claims []string) (string, error) {
	m, err := decodeObject(payload)
	if err != nil {
		return "", err
	}
	return subjectFrom(m, claims)
}

// subjectFrom is subjectOf on decoded claims. With none of the claims
// present the token is refused as missing_claim naming them all ("user_id
// or sub"); with one present but empty or of another type, as
// invalid_claim naming the first such.
func subjectFrom(m map[string]json.RawMessage, claims []string) (string, error) {
	invalid := ""
	for _, name := range claims {
		v, ok := m[name]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) == nil && s != "" {
			return s, nil
		}
		if isInteger(v) {
			return string(v), nil
		}
		if invalid == "" {
			invalid = name
		}
	}
	if invalid != "" {
		return "", claimError("invalid_claim", invalid, errNoSubject)
	}
	return "", claimError("missing_claim", strings.Join(claims, " or "), errNoSubject)
}

// maxNumericDate is 9999-12-31T23:59:59Z, the last second RFC 3339 (and
// so most JWT libraries) can write.
const maxNumericDate = 253402300799

// checkNumericDates refuses exp, nbf and iat when present as anything but
// a NumericDate (RFC 7519 section 2): a JSON number of seconds since the
// epoch. jwx also takes strings ("9999999999", RFC 3339 text), so a
// payload that other libraries refuse, or read differently, would pass.
// Fractions and exponents are JSON numbers and allowed (1.5, 1.7e9); a
// value below 0 or after maxNumericDate is refused too, since that is
// where libraries' conversions to integers and times disagree or wrap.
func checkNumericDates(m map[string]json.RawMessage) error {
	for _, name := range [...]string{"exp", "nbf", "iat"} {
		v, ok := m[name]
		if ok && !isNumericDate(v) {
			return claimError("invalid_claim", name, errNumericDate)
		}
	}
	return nil
}

// checkStringClaims refuses sub, iss and jti when present as anything but
// a JSON string, and aud as anything but a string or an array of strings
// (RFC 7519 section 4.1), naming the claim. jwx refuses them too, but as a
// decode error of the whole token, which would leave the log and the 401
// without the claim's name. A null sub, iss or jti is left to jwx, which
// reads it as absent.
func checkStringClaims(m map[string]json.RawMessage) error {
	for _, name := range [...]string{"sub", "iss", "jti", "aud"} {
		v, ok := m[name]
		if !ok || name != "aud" && string(v) == "null" {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) == nil && v[0] == '"' {
			continue
		}
		var list []string
		if name == "aud" && v[0] == '[' && json.Unmarshal(v, &list) == nil {
			continue
		}
		return claimError("invalid_claim", name, errStringClaim)
	}
	return nil
}

// isNumericDate reports whether v, a valid JSON value, is a number in
// [0, maxNumericDate].
func isNumericDate(v json.RawMessage) bool {
	if len(v) == 0 || v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		return false // a string, true, false, null, an object or an array
	}
	f, err := strconv.ParseFloat(string(v), 64)
	return err == nil && f >= 0 && f <= maxNumericDate
}

// isInteger reports whether a raw JSON value is an integer literal.
func isInteger(v []byte) bool {
	if len(v) > 0 && v[0] == '-' {
		v = v[1:]
	}
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ambiguousRefresh answers a message that names a refresh but not in
// exactly one spelling: an error reply, never a refresh, never the Handler.
func ambiguousRefresh() error {
	return &MessageError{Code: CodeInvalidMessage, Field: "type",
		Message: "refresh request with ambiguous member names", Rule: "refresh_ambiguous"}
}

// refreshToken reports whether m is a refresh request (see
// AuthOptions.AllowRefresh) and returns its token. Member names are
// matched exactly, not as encoding/json matches struct fields (without
// case, so "TYPE" or "Token" would do). A message whose one "type"-like
// member is spelled otherwise ({"TYPE":"refresh"}) is an ordinary message;
// one with "type" exactly and another "type"-like or a "token"-like member
// not spelled "token" ({"type":"refresh","TYPE":...}, {"type":"refresh",
// "Token":...}), or a duplicate, is answered with an error reply (ambiguousRefresh): parsers that
// pick a different member would disagree about what it is. A cheap byte
// check keeps ordinary messages off the JSON decoder: "refresh" can be
// spelled otherwise only with \u escapes.
func refreshToken(m Message) ([]byte, bool, error) {
	if m.Type != MessageText || !bytes.Contains(m.Data, []byte(`"refresh"`)) && !bytes.Contains(m.Data, []byte(`\u`)) {
		return nil, false, nil
	}
	members, ok := objectMembers(m.Data)
	if !ok {
		return nil, false, nil
	}
	var (
		refresh, exact  bool // some type-like member says "refresh"; one is named "type"
		types, tokens   int
		token           json.RawMessage
		strangeTokenKey bool
	)
	for _, mb := range members {
		switch {
		case strings.EqualFold(mb.name, "type"): // the fold encoding/json applies
			types++
			exact = exact || mb.name == "type"
			var v string
			if json.Unmarshal(mb.value, &v) == nil && v == "refresh" {
				refresh = true
			}
		case strings.EqualFold(mb.name, "token"):
			tokens++
			if mb.name == "token" {
				token = mb.value
			} else {
				strangeTokenKey = true
			}
		}
	}
	switch {
	case !refresh, types == 1 && !exact:
		return nil, false, nil
	case types > 1 || tokens > 1 || strangeTokenKey:
		return nil, false, ambiguousRefresh()
	}
	var tok string
	json.Unmarshal(token, &tok) // absent or not a string: an empty token, refused as invalid
	return []byte(tok), true, nil
}

type member struct {
	name  string
	value json.RawMessage
}

// objectMembers returns the members of b, in order and with duplicates,
// if b is exactly one JSON object.
func objectMembers(b []byte) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var out []member
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		name, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		out = append(out, member{name, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return out, true
}
