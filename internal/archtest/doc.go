// Package archtest holds no code: its test keeps the import graph of the
// module pointing one way (states ← transitions ← persist ← fsm ← engine ← cmd;
// states ← persist ← boltstore) and each third-party package behind the one
// package of ours that wraps it.
package archtest
