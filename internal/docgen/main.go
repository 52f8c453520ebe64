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
	readme := fs.String("readme", "", "the README whose generated blocks (ReadmeRegions) are rewritten too")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("docgen: -out is required")
	}
	stale := false
	// update writes want to path unless it holds it already (or, under
	// -check, says it is stale).
	update := func(path string, got, want []byte) error {
		if bytes.Equal(got, want) {
			return nil
		}
		if *check {
			fmt.Fprintf(stderr, "docgen: %s is stale\n", path)
			stale = true
			return nil
		}
		if err := os.WriteFile(path, want, 0o644); err != nil {
			return fmt.Errorf("docgen: write %s: %w", path, err)
		}
		fmt.Fprintf(stderr, "docgen: wrote %s\n", path)
		return nil
	}
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
		if err := update(path, got, want); err != nil {
			return err
		}
	}
	if *readme != "" {
		got, err := os.ReadFile(*readme)
		if err != nil {
			return fmt.Errorf("docgen: read %s: %w", *readme, err)
		}
		want, err := spliceAll(got, ReadmeRegions())
		if err != nil {
			return fmt.Errorf("%s: %w", *readme, err)
		}
		if err := update(*readme, got, want); err != nil {
			return err
		}
	}
	if stale {
		return errStale
	}
	return nil
}
