package wssafe

// FieldError and the field validators (Length, Chars, Pattern, Range, OneOf,
// URL).

import (
	"cmp"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// A FieldError reports a field that broke a rule. The field validators in
// this package return one; [Validate], [JSON] and [Router] turn it into an
// invalid_message reply naming the field.
//
// Its text never contains the field's value, so it is safe to log and to
// send; the value may be a secret or an injection attempt.
//
// The field validators ([Length], [Chars], [Pattern], [Range], [OneOf],
// [URL], [Email]) return nil or a *FieldError. They compose with cmp.Or,
// which returns the first failure, in a typed message's Validate method:
//
//	func (s SignUp) Validate() error {
//		return cmp.Or(
//			wssafe.Email("email", s.Email),
//			wssafe.Length("name", s.Name, 1, 64),
//			wssafe.OneOf("plan", s.Plan, "free", "pro"),
//		)
//	}
type FieldError struct {
	// Field is the name the client knows the field by (its JSON name).
	Field string
	// Rule names the check that failed, e.g. "length" or "email.syntax". It
	// is logged, not sent.
	Rule string
	// Message is human text for the client, e.g. "must be an email address".
	Message string
	// Err is an underlying cause, if any (e.g. a DNS failure). It is
	// neither sent nor logged.
	Err error
}

// Error describes the failure by field, message and rule, never by value.
func (e *FieldError) Error() string {
	return fmt.Sprintf("wssafe: field %q: %s (%s)", e.Field, e.Message, e.Rule)
}

// Unwrap returns Err, so errors.Is and errors.As see the cause.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldError(field, rule, msg string) *FieldError {
	return &FieldError{Field: field, Rule: rule, Message: msg}
}

// Length checks that value is valid UTF-8 of min to max characters
// (runes, not bytes: "é" is one). Rules: "utf8", "length".
func Length(field, value string, min, max int) error {
	if !utf8.ValidString(value) {
		return fieldError(field, "utf8", "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(value); n < min || n > max {
		return fieldError(field, "length", fmt.Sprintf("must be %d to %d characters long", min, max))
	}
	return nil
}

// Chars checks that value is valid UTF-8 and that allowed reports true for
// every rune. unicode.IsPrint is a useful allowed: it refuses control
// characters (NUL, CR, LF, ESC) and invisible format characters (bidi
// overrides, zero-width joiners) that disguise text. Rules: "utf8", "chars".
func Chars(field, value string, allowed func(r rune) bool) error {
	if !utf8.ValidString(value) {
		return fieldError(field, "utf8", "must be valid UTF-8")
	}
	for _, r := range value {
		if !allowed(r) {
			return fieldError(field, "chars", "contains a character that is not allowed")
		}
	}
	return nil
}

// Pattern checks that re matches all of value, not just part of it. Anchor
// re (^...$): for an unanchored alternation such as a|ab, the leftmost match
// may be shorter than value and Pattern then refuses, failing closed.
// Compile re once, at package init or construction; regexp's RE2 engine
// runs in linear time, so a hostile value cannot make it backtrack.
// Rule: "pattern".
func Pattern(field, value string, re *regexp.Regexp) error {
	if loc := re.FindStringIndex(value); loc == nil || loc[0] != 0 || loc[1] != len(value) {
		return fieldError(field, "pattern", "has an invalid format")
	}
	return nil
}

// Range checks that min <= v <= max: numbers, or any other ordered type
// (strings compare byte-wise). NaN is outside every range. Rule: "range".
func Range[N cmp.Ordered](field string, v, min, max N) error {
	if !(v >= min && v <= max) {
		return fieldError(field, "range", fmt.Sprintf("must be between %v and %v", min, max))
	}
	return nil
}

// OneOf checks that v is one of allowed. The reply does not list the
// allowed values, which may be internal. Rule: "one_of".
func OneOf[T comparable](field string, v T, allowed ...T) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fieldError(field, "one_of", "is not an allowed value")
}

// MaxURLLen is the longest URL [URL] accepts, in bytes.
const MaxURLLen = 2048

// URL checks that value is an absolute URL with a host whose scheme is one
// of schemes (compared case-insensitively); no schemes means "https" only.
// It refuses what makes links lie about where they lead:
//   - user information ("https://bank.example@evil.example/");
//   - backslashes, which browsers treat as slashes;
//   - whitespace and control characters;
//   - non-ASCII hosts: send IDNs as A-labels ("xn--"), the form users are
//     shown by browsers anyway;
//   - more than [MaxURLLen] bytes.
//
// Allowing "javascript" or "data" lets the URL run code where it is
// rendered as a link. Rules: "url.syntax", "url.scheme", "url.host",
// "url.userinfo", "url.length".
func URL(field, value string, schemes ...string) error {
	if len(value) > MaxURLLen {
		return fieldError(field, "url.length", fmt.Sprintf("must be at most %d bytes", MaxURLLen))
	}
	if strings.ContainsFunc(value, func(r rune) bool { return r <= ' ' || r == '\\' || r == 0x7f || r >= utf8.RuneSelf }) {
		return fieldError(field, "url.syntax", "must be a URL")
	}
	u, err := url.Parse(value)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return fieldError(field, "url.syntax", "must be a URL")
	}
	if !schemeAllowed(u.Scheme, schemes) {
		return fieldError(field, "url.scheme", "has a scheme that is not allowed")
	}
	if u.User != nil {
		return fieldError(field, "url.userinfo", "must not contain user information")
	}
	if u.Hostname() == "" {
		return fieldError(field, "url.host", "must have a host")
	}
	return nil
}

func schemeAllowed(scheme string, allowed []string) bool {
	if len(allowed) == 0 {
		allowed = []string{"https"}
	}
	for _, a := range allowed {
		if strings.EqualFold(scheme, a) {
			return true
		}
	}
	return false
}
