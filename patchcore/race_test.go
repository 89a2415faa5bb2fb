//go:build race

package patchcore

const raceEnabled = true
