//go:build !race

package main

// raceBuild is true when the tests run with -race; the end-to-end tests then
// build their child processes with the race detector too.
const raceBuild = false
