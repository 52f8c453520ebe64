package persist

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxRefLen is the longest ref a task may have, in bytes. Refs are keys in
// every store (bbolt's refs bucket, PostgreSQL's unique column), which cap
// them at this length.
const MaxRefLen = 1024

// ErrInvalidRef: a ref no store can keep as given (too long, not UTF-8, or
// holding a NUL byte). ValidateRef's errors wrap it.
var ErrInvalidRef = errors.New("persist: invalid ref")

// refError is ValidateRef's error: its text names the field and the
// problem alone, so that callers can prefix where the ref came from.
type refError string

func (e refError) Error() string { return "ref: " + string(e) }

func (e refError) Unwrap() error { return ErrInvalidRef }

// ValidateRef reports why ref cannot name a task, or nil. The empty ref
// (no ref) is valid. Callers check a ref before anything is stored or
// sent, so that a bad one is refused with its own name rather than by a
// store's Create naming a task id that was never stored.
func ValidateRef(ref string) error {
	switch {
	case len(ref) > MaxRefLen:
		return refError(fmt.Sprintf("longer than %d bytes (got %d)", MaxRefLen, len(ref)))
	case !utf8.ValidString(ref):
		return refError("not valid UTF-8")
	case strings.IndexByte(ref, 0) >= 0:
		return refError("holds a NUL byte")
	}
	return nil
}
