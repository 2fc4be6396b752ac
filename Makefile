# Developer entry points; each target is a script that also runs alone.
.PHONY: test lint vulncheck fuzz bench bench-quick

test:
	go test -race -count=1 ./...

lint:
	ci/lint.sh

vulncheck:
	ci/vulncheck.sh

fuzz:
	ci/fuzz.sh

bench:
	bench/run.sh

bench-quick:
	BENCH_QUICK=1 bench/run.sh
