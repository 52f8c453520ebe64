package fsm

import (
	"fmt"
	"strings"

	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// Diagrams are drawn from transitions.Table in table order, so the output
// is byte-for-byte stable and a generated doc only changes when the table
// does. (looplab's own visualisers sort its transition map and know
// nothing of terminal states, so they are not used.)

// Mermaid returns the machine as a Mermaid stateDiagram-v2: the start edge
// into transitions.Initial, one line "From --> To: event" per edge of the
// table, and an edge from each terminal state to the end.
func Mermaid() string {
	var b strings.Builder
	writeMermaid(&b)
	return b.String()
}

// HighlightClass is the Mermaid class MermaidHighlight gives the current
// state.
const HighlightClass = "current"

// MermaidHighlight returns Mermaid() with current marked by the class
// HighlightClass (a filled green box), for a view of one task. A state
// that is not one of the seven is not marked.
func MermaidHighlight(current states.State) string {
	var b strings.Builder
	writeMermaid(&b)
	if current.Valid() {
		fmt.Fprintf(&b, "    classDef %s fill:#00AA00,color:#ffffff,stroke:#005500,stroke-width:2px\n", HighlightClass)
		fmt.Fprintf(&b, "    class %s %s\n", current, HighlightClass)
	}
	return b.String()
}

func writeMermaid(b *strings.Builder) {
	b.WriteString("stateDiagram-v2\n")
	fmt.Fprintf(b, "    [*] --> %s\n", transitions.Initial)
	for _, e := range transitions.Table() {
		fmt.Fprintf(b, "    %s --> %s: %s\n", e.From, e.To, e.Event)
	}
	for _, s := range states.All() {
		if s.Terminal() {
			fmt.Fprintf(b, "    %s --> [*]\n", s)
		}
	}
}

// Dot returns the machine as a Graphviz digraph: a point for the start,
// one labelled edge per edge of the table, terminal states drawn as double
// circles and NeedsAccountFix, which waits for a person, as an octagon.
func Dot() string {
	var b strings.Builder
	b.WriteString("digraph captchafsm {\n")
	b.WriteString("    rankdir=LR;\n")
	b.WriteString("    node [shape=box, style=rounded];\n")
	b.WriteString("    \"[*]\" [shape=point];\n")
	for _, s := range states.All() {
		switch {
		case s.Terminal():
			fmt.Fprintf(&b, "    %q [shape=doublecircle, style=solid];\n", s)
		case s == states.NeedsAccountFix:
			fmt.Fprintf(&b, "    %q [shape=octagon, style=solid];\n", s)
		default:
			fmt.Fprintf(&b, "    %q;\n", s)
		}
	}
	fmt.Fprintf(&b, "    \"[*]\" -> %q [label=%q];\n", transitions.Initial, transitions.Created)
	for _, e := range transitions.Table() {
		fmt.Fprintf(&b, "    %q -> %q [label=%q];\n", e.From, e.To, e.Event)
	}
	b.WriteString("}\n")
	return b.String()
}
