// Package bench compares wssafe with its peers: Go benchmarks in this
// package (go test -bench . -benchmem), a load tool in cmd/load that drives
// a server started from cmd/server over loopback, and run.sh, which runs
// the comparison and prints the table. It is a separate module so that the
// peers never enter wssafe's go.mod.
package bench
