//go:build !race

package ephemeral_test

const raceEnabled = false
