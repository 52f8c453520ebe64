// Package readmetest follows the README as a newcomer would: it builds the
// README's programs in a module of their own, outside the repository (a
// go.mod whose replace directive points at it), and runs them as the
// README says. Its one test, TestReadmeBotSurvivesAKill, runs the
// README's crash-surviving bot on 50 captchas against `captchafsm
// simulate`, kills it with SIGKILL midway, runs it again and collects
// every answer by ref, none paid twice.
//
// The build needs no network: the module takes the repository's go.sum
// and the machine's module cache (GOPROXY=off; should a dependency be
// missing from the cache, the build is tried again with the machine's
// GOPROXY, and the test says so).
package readmetest
