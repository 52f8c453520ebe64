// Package transitions holds the two tables that drive every solve, as data:
// the error catalogue (one Entry per provider code: its class, the endpoint
// that answers it, its meaning, the fix a person should make, and its retry
// delay or ban length) and the transition table ((state, event) → state).
//
// They are the single source of truth: the fsm package builds its machines
// from Table, the engine's decisions follow Classify, and the docs and the
// CLI's tables are generated from both.
//
// The catalogue holds every code of the CaptchaAI error guide with the
// guide's class, plus codes from the provider's documentation that the
// guide lacks, each with a comment on why it is classed as it is. Codes it
// does not hold classify as ClassUnknown: the engine fails the task and
// keeps the raw code.
package transitions
