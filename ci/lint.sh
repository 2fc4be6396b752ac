#!/usr/bin/env bash
# Static checks: gofmt -s, go vet and staticcheck (pinned) on every module
# of the repository (ci/modules.sh), each against its own go.mod
# (GOWORK=off). Needs only the Go toolchain and the module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off

# honnef.co/go/tools v0.8.2 (staticcheck 2026.1.x) is the newest release that
# builds with Go 1.26; bump it together with the Go version.
STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2

fail=0
# gofmt knows no modules: one pass over the tree covers them all.
unformatted=$(gofmt -s -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt -s needed:"; echo "$unformatted"; fail=1
fi
for mod in $(bash ci/modules.sh); do
	echo "lint: $mod"
	(cd "$mod" && go vet ./...) || fail=1
	(cd "$mod" && go run "$STATICCHECK" ./...) || fail=1
done
if [ "$fail" -ne 0 ]; then
	echo "lint: FAILED"; exit 1
fi
echo "lint: ok"
