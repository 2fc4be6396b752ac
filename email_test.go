package wssafe_test

import (
	"context"
	"errors"
	"net"
	"net/mail"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

func TestEmail(t *testing.T) {
	t.Parallel()
	label63 := strings.Repeat("a", 63)
	// 64 + 1 + 189 = 254 bytes: the longest address.
	longest := strings.Repeat("l", 64) + "@" + label63 + "." + label63 + "." + strings.Repeat("c", 61)
	require.Len(t, longest, 254)
	idn := wssafe.EmailRule{AllowIDN: true}
	all := wssafe.EmailRule{AllowIDN: true, AllowUnicodeLocal: true, AllowQuotedLocal: true}

	for _, tc := range []struct {
		name  string
		rule  wssafe.EmailRule
		in    string
		want  string // canonical form; "" when refused
		error string // the FieldError's rule when refused
	}{
		{"plain", wssafe.EmailRule{}, "ann@example.com", "ann@example.com", ""},
		{"subaddress", wssafe.EmailRule{}, "first.last+tag@mail.example.co.uk", "first.last+tag@mail.example.co.uk", ""},
		{"apostrophe", wssafe.EmailRule{}, "o'brien@example.com", "o'brien@example.com", ""},
		{"domain case folded, local kept", wssafe.EmailRule{}, "Ann@EXAMPLE.Com", "Ann@example.com", ""},
		{"longest", wssafe.EmailRule{}, longest, longest, ""},
		{"local at 64", wssafe.EmailRule{}, strings.Repeat("a", 64) + "@example.com", strings.Repeat("a", 64) + "@example.com", ""},

		{"empty", wssafe.EmailRule{}, "", "", "email.syntax"},
		{"no at", wssafe.EmailRule{}, "plainaddress", "", "email.syntax"},
		{"no local", wssafe.EmailRule{}, "@example.com", "", "email.syntax"},
		{"no domain", wssafe.EmailRule{}, "ann@", "", "email.syntax"},
		{"two ats", wssafe.EmailRule{}, "ann@evil@example.com", "", "email.syntax"},
		{"display name", wssafe.EmailRule{}, "Ann <ann@example.com>", "", "email.syntax"},
		{"angle brackets", wssafe.EmailRule{}, "<ann@example.com>", "", "email.syntax"},
		{"comment in local", wssafe.EmailRule{}, "ann(comment)@example.com", "", "email.syntax"},
		{"comment after", wssafe.EmailRule{}, "ann@example.com (Ann)", "", "email.domain"},
		{"leading dot", wssafe.EmailRule{}, ".ann@example.com", "", "email.syntax"},
		{"trailing dot", wssafe.EmailRule{}, "ann.@example.com", "", "email.syntax"},
		{"double dot", wssafe.EmailRule{}, "a..nn@example.com", "", "email.syntax"},
		{"space", wssafe.EmailRule{}, "a nn@example.com", "", "email.syntax"},
		{"NUL in local", wssafe.EmailRule{}, "an\x00n@example.com", "", "email.syntax"},
		{"NUL in domain", wssafe.EmailRule{}, "ann@exam\x00ple.com", "", "email.domain"},
		{"header injection", wssafe.EmailRule{}, "ann@example.com\r\nBcc: all@example.com", "", "email.syntax"},
		{"invalid UTF-8", wssafe.EmailRule{}, "ann@ex\xffample.com", "", "email.syntax"},
		{"fullwidth at sign", wssafe.EmailRule{}, "ann\uff20example.com", "", "email.syntax"},
		{"local over 64", wssafe.EmailRule{}, strings.Repeat("a", 65) + "@example.com", "", "email.local_too_long"},
		{"address over 254", wssafe.EmailRule{}, "a" + longest, "", "email.too_long"},
		{"overlong attack", wssafe.EmailRule{}, strings.Repeat("a", 1<<20) + "@example.com", "", "email.too_long"},
		{"label over 63", wssafe.EmailRule{}, "ann@" + label63 + "a.com", "", "email.domain"},
		{"single label", wssafe.EmailRule{}, "ann@localhost", "", "email.domain"},
		{"numeric top-level", wssafe.EmailRule{}, "ann@192.168.0.1", "", "email.domain"},
		{"IPv4 literal", wssafe.EmailRule{}, "ann@[192.168.0.1]", "", "email.ip_literal"},
		{"IPv6 literal", wssafe.EmailRule{}, "ann@[IPv6:::1]", "", "email.ip_literal"},
		{"trailing dot domain", wssafe.EmailRule{}, "ann@example.com.", "", "email.domain"},
		{"empty label", wssafe.EmailRule{}, "ann@example..com", "", "email.domain"},
		{"leading hyphen", wssafe.EmailRule{}, "ann@-example.com", "", "email.domain"},
		{"trailing hyphen", wssafe.EmailRule{}, "ann@example-.com", "", "email.domain"},
		{"underscore", wssafe.EmailRule{}, "ann@exa_mple.com", "", "email.domain"},
		{"reserved hyphens", wssafe.EmailRule{}, "ann@ab--cd.com", "", "email.domain"},

		{"quoted by default", wssafe.EmailRule{}, `"ann smith"@example.com`, "", "email.quoted"},
		{"quoted allowed", all, `"ann smith"@example.com`, `"ann smith"@example.com`, ""},
		{"quoted pair", all, `"a\"b"@example.com`, `"a\"b"@example.com`, ""},
		{"quoted at sign", all, `"a@b"@example.com`, `"a@b"@example.com`, ""},
		{"unbalanced quote", all, `"a"b"@example.com`, "", "email.syntax"},
		{"quoted NUL", all, "\"a\x00b\"@example.com", "", "email.syntax"},
		{"quoted escaped NUL", all, "\"a\\\x00b\"@example.com", "", "email.syntax"},
		{"quoted newline", all, "\"a\nb\"@example.com", "", "email.syntax"},
		{"quoted non-ASCII", all, "\"ä\"@example.com", "", "email.syntax"},

		{"IDN by default", wssafe.EmailRule{}, "ann@bücher.example", "", "email.idn"},
		{"A-label by default", wssafe.EmailRule{}, "ann@xn--bcher-kva.example", "", "email.idn"},
		{"IDN allowed", idn, "ann@bücher.example", "ann@xn--bcher-kva.example", ""},
		{"A-label allowed", idn, "ann@XN--BCHER-KVA.example", "ann@xn--bcher-kva.example", ""},
		{"IDN Japanese mix", idn, "ann@例え.テスト", "ann@xn--r8jz45g.xn--zckzah", ""},
		{"IDN fullwidth mapped", idn, "ann@ｅｘａｍｐｌｅ.com", "ann@example.com", ""},
		{"ß is kept (non-transitional)", idn, "ann@faß.de", "ann@xn--fa-hia.de", ""},
		{"confusable: Cyrillic a in Latin", idn, "ann@p\u0430ypal.com", "", "email.mixed_script"},
		{"confusable: Greek omicron in Latin", idn, "ann@g\u03bfogle.com", "", "email.mixed_script"},
		// A whole-script look-alike cannot be told from intent: documented.
		{"confusable: all Cyrillic", idn, "ann@\u0430\u0440\u0440\u04cf\u0435.com", "ann@xn--80ak6aa92e.com", ""},
		{"IDN right-to-left override", idn, "ann@ex\u202eample.com", "", "email.domain"},
		{"IDN zero-width joiner", idn, "ann@exa\u200dmple.com", "", "email.domain"},
		{"IDN emoji", idn, "ann@xn--ls8h.la", "", "email.domain"},
		{"IDN bidi rule", idn, "ann@a\u05d0.com", "", "email.domain"},
		{"bad A-label", idn, "ann@xn--abc.com", "", "email.domain"},
		{"ASCII-only A-label", idn, "ann@xn--ann-.com", "", "email.domain"},

		{"unicode local by default", wssafe.EmailRule{}, "用户@example.com", "", "email.unicode_local"},
		{"unicode local allowed", all, "用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v", ""},
		{"unicode local mixed scripts", all, "p\u0430ypal@example.com", "", "email.mixed_script"},
		{"unicode local zero width space", all, "a\u200bnn@example.com", "", "email.syntax"},
		{"unicode local symbol", all, "a\u2764nn@example.com", "", "email.syntax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.rule.Canonical("email", tc.in)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.error, rule(t, err))
			if tc.rule == (wssafe.EmailRule{}) {
				assert.Equal(t, err == nil, wssafe.Email("email", tc.in) == nil, "Email is the zero rule")
			}
			if err == nil {
				a, perr := mail.ParseAddress(got)
				require.NoError(t, perr, "net/mail agrees that %q is an address", got)
				assert.Empty(t, a.Name)
			} else if len(tc.in) > 4 {
				assert.NotContains(t, err.Error(), tc.in)
			}
		})
	}
}

// fakeResolver answers from tables; a name in neither is NXDOMAIN.
type fakeResolver struct {
	mx    map[string][]*net.MX
	ip    map[string][]netip.Addr
	fail  error         // returned by every lookup when set
	block chan struct{} // when set, lookups wait on it or ctx
	calls []string
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f *fakeResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	f.calls = append(f.calls, "MX "+name)
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	if mx, ok := f.mx[name]; ok {
		return mx, nil
	}
	return nil, notFound(name)
}

func (f *fakeResolver) LookupNetIP(ctx context.Context, network, name string) ([]netip.Addr, error) {
	f.calls = append(f.calls, "IP "+name)
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	if ip, ok := f.ip[name]; ok {
		return ip, nil
	}
	return nil, notFound(name)
}

func (f *fakeResolver) wait(ctx context.Context) error {
	if f.fail != nil {
		return f.fail
	}
	if f.block == nil {
		return nil
	}
	select {
	case <-f.block:
		return nil
	case <-ctx.Done():
		return &net.DNSError{Err: ctx.Err().Error(), IsTimeout: true}
	}
}

func TestEmailDeliverable(t *testing.T) {
	t.Parallel()
	tables := func() *fakeResolver {
		return &fakeResolver{
			mx: map[string][]*net.MX{
				"mail.example":   {{Host: "mx1.mail.example.", Pref: 10}},
				"nullmx.example": {{Host: ".", Pref: 0}},
			},
			ip: map[string][]netip.Addr{"a-only.example": {netip.MustParseAddr("192.0.2.1")}},
		}
	}
	for _, tc := range []struct {
		in, rule string
		calls    []string
	}{
		{"ann@mail.example", "", []string{"MX mail.example"}},
		{"ann@a-only.example", "", []string{"MX a-only.example", "IP a-only.example"}},
		{"ann@nullmx.example", "email.undeliverable", []string{"MX nullmx.example"}},
		{"ann@nowhere.example", "email.undeliverable", []string{"MX nowhere.example", "IP nowhere.example"}},
		{"ann@MAIL.example", "", []string{"MX mail.example"}},
		{"not an address", "email.syntax", nil},
	} {
		res := tables()
		err := wssafe.EmailRule{Resolver: res}.Deliverable(context.Background(), "email", tc.in)
		assert.Equal(t, tc.rule, rule(t, err), tc.in)
		assert.Equal(t, tc.calls, res.calls, tc.in)
	}

	t.Run("DNS failure", func(t *testing.T) {
		res := &fakeResolver{fail: &net.DNSError{Err: "server misbehaving", IsTemporary: true}}
		err := wssafe.EmailRule{Resolver: res}.Deliverable(context.Background(), "email", "ann@mail.example")
		assert.Equal(t, "email.dns", rule(t, err))
		var de *net.DNSError
		assert.ErrorAs(t, err, &de, "the cause is wrapped")
	})
	t.Run("timeout", func(t *testing.T) {
		res := &fakeResolver{block: make(chan struct{})}
		start := time.Now()
		err := wssafe.EmailRule{Resolver: res, Timeout: 50 * time.Millisecond}.Deliverable(context.Background(), "email", "ann@mail.example")
		assert.Equal(t, "email.dns", rule(t, err))
		assert.Less(t, time.Since(start), 5*time.Second, "the lookup is bounded by Timeout")
		var de *net.DNSError
		require.ErrorAs(t, err, &de)
		assert.True(t, de.IsTimeout)
	})
	t.Run("caller's context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res := &fakeResolver{block: make(chan struct{})}
		err := wssafe.EmailRule{Resolver: res}.Deliverable(ctx, "email", "ann@mail.example")
		assert.Equal(t, "email.dns", rule(t, err))
	})
	t.Run("Canonical never resolves", func(t *testing.T) {
		res := &fakeResolver{fail: errors.New("must not be called")}
		_, err := wssafe.EmailRule{Resolver: res}.Canonical("email", "ann@mail.example")
		assert.NoError(t, err)
		assert.Empty(t, res.calls)
	})
}
