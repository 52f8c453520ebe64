package engine_test

import (
	"encoding/base64"
)

// pngBase64 returns a base64 body of n bytes that starts with the PNG
// signature, enough for validation by content.
func pngBase64(n int) string {
	b := make([]byte, n)
	copy(b, "\x89PNG\r\n\x1a\n")
	for i := 8; i < n; i++ {
		b[i] = byte(i)
	}
	return base64.StdEncoding.EncodeToString(b)
}
