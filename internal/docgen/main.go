package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/captchafsm/captchafsm/internal/cli"
)

// Page is one generated document.
type Page struct {
	// Name is the file's name in the output directory.
	Name string
	// Render returns the file's content.
	Render func() ([]byte, error)
}

// Pages returns every page the generator writes, in a stable order.
func Pages() []Page {
	return []Page{
		{Name: "states.md", Render: RenderStates},
		{Name: "errors.md", Render: RenderErrors},
		{Name: "cli.md", Render: renderCaptchafsmCLI},
	}
}

// renderCaptchafsmCLI renders the help of the real command tree. NewRoot
// has no side effects, and no flag default depends on the environment, so
// the page does not either.
func renderCaptchafsmCLI() ([]byte, error) { return RenderCLI(cli.NewRoot(nil)) }

// errStale reports, under -check, that a page differs from its data.
var errStale = errors.New("docgen: docs are stale: run go generate ./...")

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run writes (or, with -check, compares) every page of Pages under -out.
func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("docgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory the pages are written to (required)")
	check := fs.Bool("check", false, "write nothing; fail if a page differs from its data")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("docgen: -out is required")
	}
	stale := false
	for _, pg := range Pages() {
		want, err := pg.Render()
		if err != nil {
			return err
		}
		path := filepath.Join(*out, pg.Name)
		got, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("docgen: read %s: %w", path, err)
		}
		if bytes.Equal(got, want) {
			continue
		}
		if *check {
			fmt.Fprintf(stderr, "docgen: %s is stale\n", path)
			stale = true
			continue
		}
		if err := os.WriteFile(path, want, 0o644); err != nil {
			return fmt.Errorf("docgen: write %s: %w", path, err)
		}
		fmt.Fprintf(stderr, "docgen: wrote %s\n", path)
	}
	if stale {
		return errStale
	}
	return nil
}
