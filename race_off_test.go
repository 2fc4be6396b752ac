//go:build !race

package wssafe

const raceEnabled = false
