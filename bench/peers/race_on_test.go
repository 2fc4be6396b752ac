//go:build race

package peers_test

// raceEnabled: nbio's accept loop hands a connection to its poller without
// synchronisation the race detector can see (nbio marks that function
// //go:norace itself), so its case cannot run under -race.
const raceEnabled = true
