//go:build race

package gate

// raceEnabled is true when the tests run under the race detector, which
// slows scanning down too much for the timing floors of some tests.
const raceEnabled = true
