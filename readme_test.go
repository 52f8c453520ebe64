package captchafsm_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadmeExample keeps the README's embedding example the same as the
// function bot of example_test.go, which Example compiles and runs
// against the simulator: the README's code runs as written.
func TestReadmeExample(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	require.NoError(t, err)
	s := string(src)
	begin := strings.Index(s, "// README:begin\n")
	end := strings.Index(s, "// README:end")
	require.True(t, begin >= 0 && end > begin, "markers in example_test.go")
	example := strings.TrimSpace(s[begin+len("// README:begin\n") : end])
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	require.Contains(t, string(readme), example,
		"README.md's embedding example differs from example_test.go: copy the function between the markers")
}
