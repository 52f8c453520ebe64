package persist_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/captchafsm/captchafsm/persist"
)

func TestValidateRef(t *testing.T) {
	for _, tc := range []struct {
		ref, want string
	}{
		{"", ""},
		{"login-42", ""},
		{"\x1b[31m red \u202e", ""}, // printable text is the CLI's business
		{strings.Repeat("é", persist.MaxRefLen/2), ""},
		{strings.Repeat("x", persist.MaxRefLen+1), "ref: longer than 1024 bytes (got 1025)"},
		{strings.Repeat("x", 2000), "ref: longer than 1024 bytes (got 2000)"},
		{"a\xffb", "ref: not valid UTF-8"},
		{"a\x00b", "ref: holds a NUL byte"},
	} {
		err := persist.ValidateRef(tc.ref)
		if tc.want == "" {
			assert.NoError(t, err, "%q", tc.ref)
			continue
		}
		assert.EqualError(t, err, tc.want)
		assert.True(t, errors.Is(err, persist.ErrInvalidRef))
	}
}
