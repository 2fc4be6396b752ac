#!/usr/bin/env bash
# Lists the Go modules of this repository, one directory a line, "." first:
# every go.mod outside node_modules, testdata and hidden directories. The
# lint, tidy, test, fuzz and vulncheck scripts loop over this list, so a new
# module (an adapter with its own go.mod) is checked without editing CI.
#
#   ci/modules.sh          the list
#   ci/modules.sh --check  also fails unless the repository's layout holds:
#     - the root go.work uses every module but the standalone ones, and no
#       other directory; a standalone module is one with a go.work of its
#       own, which uses only itself;
#     - a module that requires another module of this repository replaces
#       it with a relative path, so that it builds alone (GOWORK=off, as the
#       checks run it) and `go mod tidy` works without the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

modules=$(find . \( -name node_modules -o -name testdata -o \( -name '.?*' -type d \) \) -prune \
	-o -name go.mod -type f -print | sed -e 's|/go.mod$||' -e 's|^\./||' | LC_ALL=C sort)
printf '%s\n' "$modules"

[ "${1:-}" = "--check" ] || exit 0
command -v jq >/dev/null || { echo "modules: --check needs jq (apt-get install jq)" >&2; exit 1; }
fail=0

# uses GO.WORK: the directories it uses, relative to its own directory.
uses() { go work edit -json "$1" | jq -r '.Use[].DiskPath' | sed -e 's|^\./||' -e 's|/$||' -e 's|^$|.|' | LC_ALL=C sort; }

# Standalone modules (bench: the peers it measures need newer golang.org/x
# modules than the core, which in the root workspace would raise the
# versions every workspace build of the core uses) have a go.work of their
# own, so that the go command works in them without the root's.
standalone=()
for m in $modules; do
	[ "$m" != . ] && [ -f "$m/go.work" ] || continue
	standalone+=("$m")
	if [ "$(uses "$m/go.work")" != . ]; then
		echo "modules: $m/go.work must use only its own module (use .)" >&2
		fail=1
	fi
done

want=$(printf '%s\n' "$modules" | grep -vxF -f <(printf '%s\n' "${standalone[@]}" '') || true)
used=$(uses go.work)
if [ "$want" != "$used" ]; then
	echo "modules: go.work must use every module but the standalone ones (${standalone[*]:-none}):" >&2
	diff <(printf '%s\n' "$want") <(printf '%s\n' "$used") | sed -n 's/^< /  missing: /p; s/^> /  standalone, or not a module: /p' >&2 || true
	echo "  fix: go work use DIR (or go work edit -dropuse DIR)" >&2
	fail=1
fi

# The repository's own module paths, from each go.mod.
paths=$(for m in $modules; do go mod edit -json "$m/go.mod" | jq -r .Module.Path; done)
for m in $modules; do
	missing=$(go mod edit -json "$m/go.mod" | jq -r --argjson ours "$(printf '%s\n' "$paths" | jq -R . | jq -s .)" '
		[.Replace // [] | .[] | select(.New.Path | startswith(".")) | .Old.Path] as $local
		| .Require // [] | .[] | .Path | select(IN($ours[]) and (IN($local[]) | not))')
	for p in $missing; do
		echo "modules: $m/go.mod requires $p without a replace by relative path (add: replace $p => RELATIVE/DIR)" >&2
		fail=1
	done
done
[ "$fail" -eq 0 ] || exit 1
echo "modules: go.work and the local replaces agree with the modules above" >&2
