package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunWritesAndChecks(t *testing.T) {
	dir := t.TempDir()
	var stderr bytes.Buffer

	err := run([]string{"-out", dir, "-check"}, &stderr)
	require.ErrorIs(t, err, errStale, "an empty directory is stale")
	assert.Contains(t, err.Error(), "run go generate ./...")
	assert.Contains(t, stderr.String(), "states.md is stale")

	stderr.Reset()
	require.NoError(t, run([]string{"-out", dir}, &stderr))
	for _, pg := range Pages() {
		want, err := pg.Render()
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(dir, pg.Name))
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got), pg.Name)
		assert.Contains(t, stderr.String(), "wrote "+filepath.Join(dir, pg.Name))
	}

	stderr.Reset()
	require.NoError(t, run([]string{"-out", dir, "-check"}, &stderr))
	require.NoError(t, run([]string{"-out", dir}, &stderr))
	assert.Empty(t, stderr.String(), "an up-to-date page is left alone")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "errors.md"), []byte("edited\n"), 0o644))
	err = run([]string{"-out", dir, "-check"}, &stderr)
	require.ErrorIs(t, err, errStale)
	assert.Contains(t, stderr.String(), "errors.md is stale")
}

func TestRunUsage(t *testing.T) {
	var stderr bytes.Buffer
	assert.ErrorContains(t, run(nil, &stderr), "-out is required")
	assert.Error(t, run([]string{"-nope"}, &stderr))
	assert.ErrorContains(t, run([]string{"-out", filepath.Join(t.TempDir(), "missing", "dir")}, &stderr), "docgen: write")
}
