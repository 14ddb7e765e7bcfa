//go:build !race

package tests

// raceDetector: this test binary runs with the race detector, and so does
// the skypipe binary it builds for the scripts.
const raceDetector = false
