#!/usr/bin/env bash
# `go mod tidy` must leave every module's go.mod and go.sum unchanged, and
# the layout must hold (ci/modules.sh --check: go.work and the local
# replaces). With --write, tidies instead of checking.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off

[ "${1:-}" = "--write" ] || bash ci/modules.sh --check >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
for mod in $(bash ci/modules.sh); do
	echo "tidy: $mod"
	if [ "${1:-}" = "--write" ]; then
		(cd "$mod" && go mod tidy)
		continue
	fi
	cp "$mod/go.mod" "$tmp/go.mod"
	cat "$mod/go.sum" >"$tmp/go.sum" 2>/dev/null || : >"$tmp/go.sum" # no go.sum without dependencies
	(cd "$mod" && go mod tidy)
	diff -u "$tmp/go.mod" "$mod/go.mod" || fail=1
	diff -u --label "$mod/go.sum (before)" --label "$mod/go.sum" "$tmp/go.sum" <(cat "$mod/go.sum" 2>/dev/null) || fail=1
done
if [ "$fail" -ne 0 ]; then
	echo "tidy: FAILED: run ci/tidy.sh --write (or go mod tidy in the module) and commit"; exit 1
fi
echo "tidy: ok"
