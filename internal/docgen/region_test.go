package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readmePath is the committed README, seen from this package.
const readmePath = "../../README.md"

// TestReadmeRegionsUpToDate fails when a generated block of the README
// differs from its data: the README's state diagram is the machine's (it
// once lacked the deadline_passed edges a later change added).
func TestReadmeRegionsUpToDate(t *testing.T) {
	got, err := os.ReadFile(readmePath)
	require.NoError(t, err)
	want, err := spliceAll(got, ReadmeRegions())
	require.NoError(t, err, "README.md: the generated blocks' markers")
	if !bytes.Equal(got, want) {
		t.Fatalf("README.md's generated blocks are stale: run go generate ./...\n%s", firstDiff(got, want))
	}
}

func TestSplice(t *testing.T) {
	doc := []byte("intro\n<!-- docgen:x -->\nold\nlines\n<!-- /docgen:x -->\noutro\n")
	got, err := splice(doc, "x", []byte("new\n"))
	require.NoError(t, err)
	assert.Equal(t, "intro\n<!-- docgen:x -->\nnew\n<!-- /docgen:x -->\noutro\n", string(got))
	again, err := splice(got, "x", []byte("new\n"))
	require.NoError(t, err)
	assert.Equal(t, got, again, "splicing the same content changes nothing")

	for name, bad := range map[string]string{
		"no markers":   "intro\n",
		"no end":       "<!-- docgen:x -->\n",
		"twice":        "<!-- docgen:x -->\n<!-- /docgen:x -->\n<!-- docgen:x -->\n<!-- /docgen:x -->\n",
		"out of order": "<!-- /docgen:x -->\n<!-- docgen:x -->\n",
	} {
		_, err := splice([]byte(bad), "x", []byte("new\n"))
		assert.Error(t, err, name)
	}
}

// TestRunRewritesTheReadme: -readme rewrites the README's blocks and
// leaves the rest of it alone; -check reports a stale one.
func TestRunRewritesTheReadme(t *testing.T) {
	dir := t.TempDir()
	readme := filepath.Join(dir, "README.md")
	require.NoError(t, os.WriteFile(readme, []byte("# hi\n<!-- docgen:diagram -->\nstale\n<!-- /docgen:diagram -->\nbye\n"), 0o644))
	var stderr bytes.Buffer
	err := run([]string{"-out", dir, "-readme", readme, "-check"}, &stderr)
	require.ErrorIs(t, err, errStale)
	assert.Contains(t, stderr.String(), readme+" is stale")

	require.NoError(t, run([]string{"-out", dir, "-readme", readme}, &stderr))
	got, err := os.ReadFile(readme)
	require.NoError(t, err)
	diagram, err := renderReadmeDiagram()
	require.NoError(t, err)
	assert.Equal(t, "# hi\n<!-- docgen:diagram -->\n"+string(diagram)+"<!-- /docgen:diagram -->\nbye\n", string(got))
	require.NoError(t, run([]string{"-out", dir, "-readme", readme, "-check"}, &stderr))

	require.NoError(t, os.WriteFile(readme, []byte("# no markers\n"), 0o644))
	assert.ErrorContains(t, run([]string{"-out", dir, "-readme", readme}, &stderr), "docgen:diagram")
}
