package wssafe

import (
	"net/http"
	"net/url"
	"path"
	"strings"
)

// originAllowed applies coder/websocket's origin rule before Accept, so the
// refusal can be logged and counted: no Origin header passes (not a
// browser), the request's own host passes, and otherwise the Origin host
// (or scheme://host for patterns with "://") must match a pattern.
func originAllowed(r *http.Request, patterns []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(r.Host, u.Host) {
		return true
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}
