package wssafe

// The Email field validator and EmailRule (syntax, internationalised domains,
// deliverability).

import (
	"context"
	"errors"
	"net"
	"net/mail"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Email address length limits, in bytes of the address's ASCII form (an
// internationalized domain counts in its "xn--" form): RFC 5321 section
// 4.5.3.1 for the parts, RFC 3696 erratum 1690 for the whole (the 256-byte
// forward path minus its angle brackets).
const (
	MaxEmailLen       = 254
	MaxEmailLocalLen  = 64
	MaxEmailDomainLen = 255
)

// DefaultEmailLookupTimeout bounds [EmailRule.Deliverable] when
// EmailRule.Timeout is zero.
const DefaultEmailLookupTimeout = 5 * time.Second

// EmailRule is a policy for email addresses. The zero value is the strict
// default that [Email] applies: a bare addr-spec (RFC 5322 section 3.4.1
// within RFC 5321's limits) with an ASCII dot-atom local part and an ASCII
// host name of at least two labels. It refuses, whatever the options:
//   - display names ("Ann <ann@example.com>") and comments
//     ("ann(x)@example.com"): an address field holds an address;
//   - address literals ("ann@[192.0.2.1]");
//   - whitespace, control characters and NUL anywhere;
//   - addresses over [MaxEmailLen], local parts over [MaxEmailLocalLen],
//     domains over [MaxEmailDomainLen] bytes; labels over 63 bytes;
//   - a domain label that mixes scripts (Latin with Cyrillic: the "а" in
//     "pаypal.com" is Cyrillic), unless the mix is one UTS #39 calls highly
//     restrictive (Han with Hiragana and Katakana, Han with Hangul, Han with
//     Bopomofo, each optionally with Latin).
//
// A domain written entirely in a look-alike script ("раураl.com" in
// Cyrillic) passes the mixed-script test: there is no way to tell it from
// intent without a confusables table. Show users the canonical (A-label)
// form, as browsers do, where it matters.
//
// Deliverability is never checked by [EmailRule.Canonical]; call
// [EmailRule.Deliverable] for that. EmailRule is a plain value, safe for
// concurrent use.
type EmailRule struct {
	// AllowIDN accepts internationalized domain names, in Unicode
	// ("bücher.example") or A-label ("xn--bcher-kva.example") form. They
	// are checked with IDNA2008 as UTS #46 maps for lookup
	// (golang.org/x/net/idna: bidi rule, joiner rules, hyphen rules, DNS
	// lengths), limited to IDNA2008's letters, digits and marks (no symbols
	// or emoji), and by the mixed-script test above; [EmailRule.Canonical]
	// returns the A-label form. Zero refuses both forms: many systems
	// cannot deliver to them, and they are how look-alike domains travel.
	AllowIDN bool
	// AllowUnicodeLocal accepts letters, marks and digits beyond ASCII in
	// the local part (RFC 6531, "SMTPUTF8"); other non-ASCII characters are
	// still refused. Zero refuses them: most mail systems cannot deliver
	// to such addresses.
	AllowUnicodeLocal bool
	// AllowQuotedLocal accepts quoted local parts ("ann smith"@example.com,
	// RFC 5321 Quoted-string, printable ASCII only). Zero refuses them:
	// they are valid but almost never real, and they carry spaces, quotes
	// and at signs into systems that do not expect them.
	AllowQuotedLocal bool
	// Resolver answers [EmailRule.Deliverable]'s DNS queries. Zero means
	// net.DefaultResolver. Tests and deployments with their own DNS inject
	// one here.
	Resolver MailResolver
	// Timeout bounds [EmailRule.Deliverable]'s lookups together. Zero means
	// [DefaultEmailLookupTimeout].
	Timeout time.Duration
}

// MailResolver is the part of *net.Resolver that [EmailRule.Deliverable]
// uses.
type MailResolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Email checks value with the zero [EmailRule]: a plain ASCII address,
// no display name, no comment, no quoting, no IDN. Rules: "email.syntax",
// "email.too_long", "email.local_too_long", "email.domain_too_long",
// "email.quoted", "email.unicode_local", "email.idn", "email.ip_literal",
// "email.domain", "email.mixed_script".
func Email(field, value string) error {
	_, err := EmailRule{}.Canonical(field, value)
	return err
}

// Canonical checks value against the rule and returns the address in the
// form to store and compare: the local part as given (it is case-sensitive
// in principle) and the domain in lower case, IDNs as A-labels. It never
// touches the network. To check without keeping the result, discard it:
// _, err := rule.Canonical(field, value).
func (r EmailRule) Canonical(field, value string) (string, error) {
	if len(value) > MaxEmailLen {
		return "", fieldError(field, "email.too_long", "must be at most 254 bytes long")
	}
	at := strings.LastIndexByte(value, '@')
	if at < 0 || !utf8.ValidString(value) {
		return "", fieldError(field, "email.syntax", "must be an email address")
	}
	local, domain := value[:at], value[at+1:]
	if err := r.checkLocal(field, local); err != nil {
		return "", err
	}
	domain, err := r.domain(field, domain)
	if err != nil {
		return "", err
	}
	addr := local + "@" + domain
	if len(addr) > MaxEmailLen {
		return "", fieldError(field, "email.too_long", "must be at most 254 bytes long")
	}
	// Cross-check with the standard library's RFC 5322 parser: anything it
	// would read as more (or other) than this one bare address is refused.
	if a, err := mail.ParseAddress(addr); err != nil || a.Name != "" {
		return "", fieldError(field, "email.syntax", "must be an email address")
	}
	return addr, nil
}

func (r EmailRule) checkLocal(field, local string) error {
	switch {
	case local == "":
		return fieldError(field, "email.syntax", "must be an email address")
	case len(local) > MaxEmailLocalLen:
		return fieldError(field, "email.local_too_long", "has a local part longer than 64 bytes")
	case local[0] == '"':
		if !r.AllowQuotedLocal {
			return fieldError(field, "email.quoted", "must not have a quoted local part")
		}
		if !quotedLocal(local) {
			return fieldError(field, "email.syntax", "must be an email address")
		}
		return nil
	}
	return r.dotAtom(field, local)
}

// dotAtom checks an unquoted local part: atoms of atext joined by single
// dots (RFC 5322 section 3.2.3), non-ASCII only as RFC 6531 allows.
func (r EmailRule) dotAtom(field, local string) error {
	ascii := true
	for _, atom := range strings.Split(local, ".") {
		if atom == "" {
			return fieldError(field, "email.syntax", "must be an email address")
		}
		for _, c := range atom {
			if c < utf8.RuneSelf {
				if !isAtext(byte(c)) {
					return fieldError(field, "email.syntax", "must be an email address")
				}
				continue
			}
			ascii = false
			if !r.AllowUnicodeLocal {
				return fieldError(field, "email.unicode_local", "must have an ASCII local part")
			}
			if !unicode.In(c, unicode.L, unicode.M, unicode.N) {
				return fieldError(field, "email.syntax", "must be an email address")
			}
		}
	}
	if !ascii && mixedScripts(local) {
		return fieldError(field, "email.mixed_script", "mixes writing systems")
	}
	return nil
}

// isAtext reports whether c is an RFC 5322 atext character.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// quotedLocal checks an RFC 5321 Quoted-string: qtextSMTP (printable ASCII
// but " and \) and quoted pairs of printable ASCII.
func quotedLocal(s string) bool {
	if len(s) < 2 || s[len(s)-1] != '"' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
			if i >= len(s)-1 || s[i] < 32 || s[i] > 126 {
				return false
			}
		case c == '"' || c < 32 || c > 126:
			return false
		}
	}
	return true
}

// domain checks a mail domain and returns its canonical form.
func (r EmailRule) domain(field, d string) (string, error) {
	switch {
	case d == "":
		return "", fieldError(field, "email.syntax", "must be an email address")
	case d[0] == '[':
		return "", fieldError(field, "email.ip_literal", "must have a domain name, not an address")
	case len(d) > MaxEmailDomainLen:
		return "", fieldError(field, "email.domain_too_long", "has a domain longer than 255 bytes")
	}
	if isIDN(d) {
		if !r.AllowIDN {
			return "", fieldError(field, "email.idn", "must have an ASCII domain")
		}
		a, err := idnToASCII(d)
		if err != nil {
			return "", fieldError(field, "email.domain", "has an invalid domain")
		}
		if err := idnScripts(field, a); err != nil {
			return "", err
		}
		d = a
	}
	d = strings.ToLower(d)
	if len(d) > MaxEmailDomainLen {
		return "", fieldError(field, "email.domain_too_long", "has a domain longer than 255 bytes")
	}
	if !hostName(d) {
		return "", fieldError(field, "email.domain", "has an invalid domain")
	}
	return d, nil
}

// isIDN reports whether d is an internationalized name in either form.
func isIDN(d string) bool {
	for i := 0; i < len(d); i++ {
		if d[i] >= utf8.RuneSelf {
			return true
		}
	}
	for _, l := range strings.Split(d, ".") {
		if len(l) >= 4 && strings.EqualFold(l[:4], "xn--") {
			return true
		}
	}
	return false
}

// idnProfile is IDNA2008 with UTS #46 lookup mapping, non-transitional
// (ß stays ß), with every check the package offers.
func idnProfile() *idna.Profile {
	return idna.New(idna.MapForLookup(), idna.BidiRule(), idna.VerifyDNSLength(true),
		idna.Transitional(false), idna.CheckHyphens(true), idna.CheckJoiners(true))
}

func idnToASCII(d string) (string, error) {
	a, err := idnProfile().ToASCII(d)
	if err != nil {
		return "", err
	}
	// An A-label must decode and re-encode to itself: "xn--" labels that
	// do not are not IDNs but lookalikes of one.
	u, err := idnProfile().ToUnicode(a)
	if err != nil {
		return "", err
	}
	if again, err := idnProfile().ToASCII(u); err != nil || again != a {
		return "", errors.New("wssafe: A-label does not round-trip")
	}
	return a, nil
}

// idnScripts checks each label of an IDN's Unicode form: IDNA2008's
// LetterDigits (RFC 5892 section 2.1) and hyphens only, which UTS #46
// lookup does not enforce (it lets symbols and emoji through), then the
// mixed-script test.
func idnScripts(field, a string) error {
	u, err := idnProfile().ToUnicode(a)
	if err != nil || strings.ContainsFunc(u, func(r rune) bool {
		return r != '-' && r != '.' && !unicode.In(r, unicode.Ll, unicode.Lu, unicode.Lo, unicode.Lm, unicode.Nd, unicode.Mn, unicode.Mc)
	}) {
		return fieldError(field, "email.domain", "has an invalid domain")
	}
	for _, l := range strings.Split(u, ".") {
		if mixedScripts(l) {
			return fieldError(field, "email.mixed_script", "mixes writing systems")
		}
	}
	return nil
}

// hostName checks an ASCII host name: two or more LDH labels of 1 to 63
// bytes, no hyphen at either end, no reserved "??--" prefix other than an
// A-label's "xn--", and a top-level label that is not all digits (so that
// 192.0.2.1 is not a domain).
func hostName(d string) bool {
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if !ldhLabel(l) {
			return false
		}
	}
	return strings.ContainsFunc(labels[len(labels)-1], func(r rune) bool { return r < '0' || r > '9' })
}

func ldhLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	if len(l) >= 4 && l[2:4] == "--" && l[:2] != "xn" {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// mixedScripts reports whether s uses more than one script, ignoring
// Common and Inherited characters, beyond the combinations UTS #39's
// "highly restrictive" level allows.
func mixedScripts(s string) bool {
	var seen []string
	for _, r := range s {
		sc := scriptOf(r)
		if sc == "" || sc == "Common" || sc == "Inherited" {
			continue
		}
		if !containsString(seen, sc) {
			seen = append(seen, sc)
		}
	}
	if len(seen) <= 1 {
		return false
	}
	for _, allowed := range [][]string{
		{"Latin", "Han", "Hiragana", "Katakana"},
		{"Latin", "Han", "Bopomofo"},
		{"Latin", "Han", "Hangul"},
	} {
		if subset(seen, allowed) {
			return false
		}
	}
	return true
}

func scriptOf(r rune) string {
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name
		}
	}
	return ""
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func subset(a, of []string) bool {
	for _, v := range a {
		if !containsString(of, v) {
			return false
		}
	}
	return true
}

// Deliverable checks value with [EmailRule.Canonical] and then asks DNS
// whether its domain accepts mail, as a sending server would (RFC 5321
// section 5.1): MX records, or failing those A/AAAA records. A lone "." MX (RFC
// 7505, "null MX") means the domain accepts no mail.
//
// It is never called implicitly: it sends the domain to a resolver, takes
// time (bounded by Timeout), and a domain that resolves still says nothing
// about the mailbox. A domain that does not resolve gets rule
// "email.undeliverable"; a lookup that fails or times out gets
// "email.dns", wrapping the cause (errors.Is(err,
// context.DeadlineExceeded) works), so the caller can decide whether to
// accept unverified addresses.
func (r EmailRule) Deliverable(ctx context.Context, field, value string) error {
	addr, err := r.Canonical(field, value)
	if err != nil {
		return err
	}
	domain := addr[strings.LastIndexByte(addr, '@')+1:]
	res := r.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultEmailLookupTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return lookupMail(ctx, res, field, domain)
}

func lookupMail(ctx context.Context, res MailResolver, field, domain string) error {
	undeliverable := fieldError(field, "email.undeliverable", "has a domain that does not accept mail")
	mxs, err := res.LookupMX(ctx, domain)
	if err == nil && len(mxs) > 0 {
		if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
			return undeliverable
		}
		return nil
	}
	if err != nil && !dnsNotFound(err) {
		return &FieldError{Field: field, Rule: "email.dns", Message: "could not be verified", Err: err}
	}
	ips, err := res.LookupNetIP(ctx, "ip", domain)
	if err == nil && len(ips) > 0 {
		return nil
	}
	if err != nil && !dnsNotFound(err) {
		return &FieldError{Field: field, Rule: "email.dns", Message: "could not be verified", Err: err}
	}
	return undeliverable
}

func dnsNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
