#!/usr/bin/env bash
# govulncheck, offline, against a pinned snapshot of the Go vulnerability
# database. The snapshot is built from the golang.org/x/vulndb module (which
# carries the OSV data) with its own cmd/indexdb, both fetched through the
# module proxy, so nothing but the proxy is needed; it is cached outside the
# repository (about 40 MB unpacked, too large to check in).
#
# Gate: any finding (symbol, package or module level) in a module of our
# build graph fails the check. Findings in the standard library belong to
# the local Go toolchain; they are reported but do not fail, since the fix is
# a toolchain upgrade, not a change here.
#
# Each module is scanned against its own go.mod (GOWORK=off): the build
# graph its go.mod names, which is what a user of that module starts from.
#
# Usage: ci/vulncheck.sh [module directory ...]   (default: every module,
#        from ci/modules.sh)
#        ci/vulncheck.sh --self-test  proves the gate fires: it scans a
#        throwaway module that requires github.com/gorilla/websocket v1.4.0
#        (GO-2020-0019) and fails unless that finding fails the scan.
#
# Refresh the snapshot: set VULNDB_VERSION to the output of
#   (cd "$(mktemp -d)" && go list -m -f '{{.Version}}' golang.org/x/vulndb@latest)
# and run this script; fix or upgrade whatever it then reports.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off

GOVULNCHECK=golang.org/x/vuln/cmd/govulncheck@v1.9.0
VULNDB_VERSION=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}
DB_DIR=${WSSAFE_VULNDB_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wssafe/vulndb-$VULNDB_VERSION}

command -v jq >/dev/null || { echo "vulncheck: needs jq (apt-get install jq)"; exit 1; }

if [ ! -f "$DB_DIR/index/db.json" ]; then
	echo "vulncheck: building the vulnerability database snapshot $VULNDB_VERSION"
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	# Outside any module, so our go.mod and go.sum stay untouched.
	src=$(cd "$work" && go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | jq -r .Dir)
	(cd "$work" && go run "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION" -vulns "$src/data/osv" -out "$work/db")
	mkdir -p "$(dirname "$DB_DIR")"
	rm -rf "$DB_DIR"
	mv "$work/db" "$DB_DIR"
fi
echo "vulncheck: database snapshot golang.org/x/vulndb@$VULNDB_VERSION"

# scan DIR: prints the findings of the module in DIR; fails on ours.
scan() {
	local report findings stdlib ours
	report=$(mktemp)
	(cd "$1" && go run "$GOVULNCHECK" -db "file://$DB_DIR" -test -format json ./...) >"$report"
	# One line per vulnerability and module, at the most precise level
	# found: symbol (our code reaches the vulnerable function), package (we
	# import the package), module (it is only in the build graph).
	findings=$(jq -rs '
		[.[] | select(.finding) | .finding | (.trace[0]) as $t
		 | {module: $t.module, osv: .osv, fixed: (.fixed_version // "no fix"),
		    rank: (if $t.function then 3 elif $t.package then 2 else 1 end)}]
		| group_by([.module, .osv])[] | max_by(.rank)
		| [(["", "module", "package", "symbol"][.rank]), .module, .osv, .fixed] | @tsv' "$report")
	rm -f "$report"
	stdlib=$(printf '%s\n' "$findings" | awk -F'\t' '$2 == "stdlib"' | grep . || true)
	ours=$(printf '%s\n' "$findings" | awk -F'\t' '$2 != "stdlib"' | grep . || true)
	if [ -n "$stdlib" ]; then
		echo "vulncheck: $1: standard library of $(go env GOVERSION) (not gating; upgrade the toolchain):"
		printf '%s\n' "$stdlib" | awk -F'\t' '{printf "  %-7s %s fixed in %s\n", $1, $3, $4}'
	fi
	if [ -n "$ours" ]; then
		echo "vulncheck: $1: FAILED: findings in the module graph:"
		printf '%s\n' "$ours" | awk -F'\t' '{printf "  %-7s %s %s fixed in %s\n", $1, $2, $3, $4}'
		return 1
	fi
	echo "vulncheck: $1: ok, no finding in the module graph"
}

if [ "${1:-}" = "--self-test" ]; then
	dir=$(mktemp -d)
	cat >"$dir/go.mod" <<'MOD'
module example.com/vulnselftest

go 1.25.0
MOD
	cat >"$dir/main.go" <<'SRC'
package main

import (
	"net/http"

	"github.com/gorilla/websocket"
)

func main() {
	up := websocket.Upgrader{}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err == nil {
			c.ReadMessage()
		}
	})
}
SRC
	(cd "$dir" && go get github.com/gorilla/websocket@v1.4.0 >/dev/null 2>&1 && go mod tidy >/dev/null 2>&1)
	if out=$(scan "$dir"); then
		gated=no
	else
		gated=yes
	fi
	rm -rf "$dir"
	printf '%s\n' "$out"
	if [ "$gated" = yes ] && grep -q 'GO-2020-0019' <<<"$out"; then
		echo "vulncheck: self-test ok: a vulnerable dependency fails the gate"
		exit 0
	fi
	echo "vulncheck: self-test FAILED: a known-vulnerable dependency passed"
	exit 1
fi

status=0
if [ "$#" -eq 0 ]; then
	mapfile -t dirs < <(bash ci/modules.sh)
	set -- "${dirs[@]}"
fi
for dir in "$@"; do
	scan "$dir" || status=1
done
exit "$status"
