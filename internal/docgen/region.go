package main

import (
	"bytes"
	"fmt"

	"github.com/captchafsm/captchafsm/fsm"
)

// Region is a generated block inside a hand-written file (the README): the
// lines between "<!-- docgen:NAME -->" and "<!-- /docgen:NAME -->", which
// the generator rewrites and the drift test compares, as it does whole
// pages. The prose around it stays the author's.
type Region struct {
	// Name is the block's name in its markers.
	Name string
	// Render returns the block's content, without the markers.
	Render func() ([]byte, error)
}

// ReadmeRegions returns the README's generated blocks: the diagram the
// README shows is the machine's, as docs/states.md's is.
func ReadmeRegions() []Region {
	return []Region{{Name: "diagram", Render: renderReadmeDiagram}}
}

func renderReadmeDiagram() ([]byte, error) {
	return []byte("```mermaid\n" + fsm.Mermaid() + "```\n"), nil
}

// markers returns the lines that open and close the block named name.
func markers(name string) (begin, end []byte) {
	return []byte("<!-- docgen:" + name + " -->\n"), []byte("<!-- /docgen:" + name + " -->\n")
}

// splice returns doc with the block of r replaced by content. It fails
// when the markers are missing, repeated or out of order: a block that
// cannot be found must not be silently skipped.
func splice(doc []byte, name string, content []byte) ([]byte, error) {
	begin, end := markers(name)
	if bytes.Count(doc, begin) != 1 || bytes.Count(doc, end) != 1 {
		return nil, fmt.Errorf("docgen: want one %q line and one %q line", bytes.TrimSpace(begin), bytes.TrimSpace(end))
	}
	i := bytes.Index(doc, begin) + len(begin)
	j := bytes.Index(doc, end)
	if j < i {
		return nil, fmt.Errorf("docgen: %q comes before %q", bytes.TrimSpace(end), bytes.TrimSpace(begin))
	}
	out := make([]byte, 0, len(doc)-(j-i)+len(content))
	out = append(out, doc[:i]...)
	out = append(out, content...)
	return append(out, doc[j:]...), nil
}

// spliceAll returns doc with every region rendered into it.
func spliceAll(doc []byte, regions []Region) ([]byte, error) {
	for _, r := range regions {
		content, err := r.Render()
		if err != nil {
			return nil, err
		}
		if doc, err = splice(doc, r.Name, content); err != nil {
			return nil, fmt.Errorf("%w (block %s)", err, r.Name)
		}
	}
	return doc, nil
}
