//go:build race

package ephemeral_test

// raceEnabled reports a build with the race detector, under which sync.Pool drops items at
// random, so allocation counts are not the program's.
const raceEnabled = true
