package captchafsm_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
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

// TestReadmePolicyIsTheDefault: the README shows a policy file and says
// "Those are the defaults": parsed, it must be engine.DefaultPolicy, and
// name every key the policy has.
func TestReadmePolicyIsTheDefault(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	s := string(readme)
	section := strings.Index(s, "## Configuration and policy")
	require.True(t, section >= 0, "README's configuration section")
	begin := strings.Index(s[section:], "```json\n")
	require.True(t, begin >= 0, "a json block in README's configuration section")
	block := s[section+begin+len("```json\n"):]
	block = block[:strings.Index(block, "```")]
	require.Contains(t, s[section:], "Those are the defaults")

	p, err := engine.ParsePolicy([]byte(block))
	require.NoError(t, err)
	require.Equal(t, engine.DefaultPolicy(), p, "README's policy block differs from the defaults")
	for _, key := range engine.PolicyKeys() {
		require.Contains(t, block, `"`+key+`"`, "README's policy block lacks a key")
	}
}
