// Command docgen writes the generated reference pages under docs/ from the
// project's data, the single source of truth:
//
//   - docs/states.md from transitions.Table, states.All and fsm.Mermaid;
//   - docs/errors.md from transitions.Catalogue;
//   - docs/cli.md from the CLI's cobra command tree;
//   - the README's generated blocks (ReadmeRegions: its state diagram),
//     between "<!-- docgen:NAME -->" and "<!-- /docgen:NAME -->" lines,
//     with -readme.
//
// # Basics
//
// Run it from the module root with
//
//	go generate ./...
//
// which runs the directive below from this directory. By hand:
//
//	go run ./internal/docgen -out docs -readme README.md          # write the pages
//	go run ./internal/docgen -out docs -readme README.md -check   # exit 1 if a page is stale
//
// Every page starts with Header and is byte-for-byte deterministic, so a
// page changes only when its data does. The drift test (TestDocsUpToDate)
// renders every page in memory and fails, naming the file and saying
// "run go generate ./...", when a committed page differs.
//
// # Caveats
//
// The rendering functions return bytes and never touch the file system;
// main alone writes. A new page is one more entry in Pages.
package main

//go:generate go run . -out ../../docs -readme ../../README.md
