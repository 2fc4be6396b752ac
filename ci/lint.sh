#!/usr/bin/env bash
# Static checks: gofmt -s, go vet and staticcheck (pinned) on the library
# and on the bench module. Needs only the Go toolchain and the module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."

# honnef.co/go/tools v0.8.2 (staticcheck 2026.1.x) is the newest release that
# builds with Go 1.26; bump it together with the Go version.
STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2

fail=0
for mod in . bench; do
	echo "lint: $mod"
	unformatted=$(cd "$mod" && gofmt -s -l .)
	if [ -n "$unformatted" ]; then
		echo "gofmt -s needed in $mod:"; echo "$unformatted"; fail=1
	fi
	(cd "$mod" && go vet ./...) || fail=1
	(cd "$mod" && go run "$STATICCHECK" ./...) || fail=1
done
if [ "$fail" -ne 0 ]; then
	echo "lint: FAILED"; exit 1
fi
echo "lint: ok"
