package cli

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// printable returns s as human-readable output may show it. Text that comes
// from a task or a provider (refs, ids, methods, parameters, codes, tokens,
// details) reaches a terminal: a control character in it could recolour or
// retitle the terminal (ESC sequences), forge a result line (a newline) or
// a column (a tab), or hide text (NUL, bidirectional overrides). Every such
// character is written as a Go escape instead (\n, \t, \x1b, \x00, \u202e),
// and so is every byte that is not UTF-8. --json output needs none of this:
// encoding/json escapes control characters itself.
//
// Backslashes are left as they are: an escape written by printable cannot
// be told from the same text typed by the user, but neither can act on the
// terminal, and paths and regular expressions stay readable.
func printable(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if mustEscape(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !mustEscape(r, size) {
			b.WriteString(s[i : i+size])
			i += size
			continue
		}
		switch {
		case size == 1 && r == utf8.RuneError:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80:
			if e, ok := shortEscapes[r]; ok {
				b.WriteString(e)
			} else {
				fmt.Fprintf(&b, `\x%02x`, r)
			}
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

var shortEscapes = map[rune]string{'\a': `\a`, '\b': `\b`, '\f': `\f`, '\n': `\n`, '\r': `\r`, '\t': `\t`, '\v': `\v`}

// mustEscape reports whether the rune r (size bytes of UTF-8) may act on a
// terminal or hide text: C0 and C1 controls, DEL, Unicode's format
// characters (bidirectional overrides, zero-width characters), the line and
// paragraph separators, and bytes that are not UTF-8.
func mustEscape(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size == 1:
		return true
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r < 0x80:
		return false
	case r == '\u2028', r == '\u2029':
		return true
	}
	return unicode.Is(unicode.Cf, r)
}
