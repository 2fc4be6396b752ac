//go:build !race

package wsotel_test

const raceEnabled = false
