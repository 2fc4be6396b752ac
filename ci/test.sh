#!/usr/bin/env bash
# The tests of every module of the repository (ci/modules.sh) under the race
# detector, each module against its own go.mod (GOWORK=off: the versions
# its go.mod names, not the workspace's union). The README's test command
# (`make test`) runs this; so does .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off

for mod in $(bash ci/modules.sh); do
	echo "test: $mod"
	(cd "$mod" && go test -race -count=1 ./...)
done
echo "test: every module ok"
