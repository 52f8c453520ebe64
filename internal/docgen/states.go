package main

import (
	"fmt"
	"strings"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// RenderStates returns docs/states.md: the machine's Mermaid diagram, the
// seven states, the transition table and the events, all from
// transitions.Table, states.All and fsm.Mermaid.
func RenderStates() ([]byte, error) {
	table := transitions.Table()
	for _, e := range table {
		if !e.From.Valid() || !e.To.Valid() {
			return nil, fmt.Errorf("docgen: states.md: edge %s --%s--> %s names an unknown state", e.From, e.Event, e.To)
		}
	}

	p := newPage("States and transitions")
	p.para("Every solve is a task that moves through seven states. Each move is an edge of the transition table " +
		"(`transitions.Table`); the engine commits it to the store before it acts on it, and `captchafsm replay` " +
		"re-derives every task's state from its history through the same table. This page is generated from that table.")

	p.heading(2, "Diagram")
	p.fence("mermaid", fsm.Mermaid())

	p.heading(2, "States")
	var terminal []string
	rows := make([][]string, 0, len(states.All()))
	for _, s := range states.All() {
		term, leaves := "no", strings.Join(eventsFrom(table, s), ", ")
		if s.Terminal() {
			term = "**yes**"
			terminal = append(terminal, code(s.String()))
		}
		if leaves == "" {
			leaves = "—"
		}
		rows = append(rows, []string{code(s.String()), term, leaves})
	}
	p.para("Every task starts in %s (event %s, the first record of its history). Terminal states: %s; no edge leaves them.",
		code(transitions.Initial.String()), code(string(transitions.Created)), strings.Join(terminal, ", "))
	p.table([]string{"State", "Terminal", "Events"}, rows)

	p.heading(2, "Transitions")
	p.para("One row per edge, in the table's order. An event not listed for a state is refused by the machine.")
	rows = rows[:0]
	for _, e := range table {
		rows = append(rows, []string{code(e.From.String()), code(string(e.Event)), code(e.To.String()), e.Why})
	}
	p.table([]string{"From", "Event", "To", "Why"}, rows)

	p.heading(2, "Decisions")
	p.para("Which event a task takes is decided by the decision table (`transitions.Rules`, read by `transitions.Decide`), " +
		"one row per case, beside the transition table above. For a task in **From** meeting **What** (an answer of " +
		"**Class**, when set) the first row whose **If** holds decides: the event, the code the task records, when it acts " +
		"next, what it counts, and the effects the engine runs once the move is committed. The engine and its test " +
		"doubles execute these rows; a new rule is a new row here.")
	rows = rows[:0]
	for _, r := range transitions.Rules() {
		if _, err := transitions.Next(r.From, r.Event); err != nil {
			return nil, fmt.Errorf("docgen: states.md: rule %s on %s: %w", r.From, r.What, err)
		}
		effects := make([]string, len(r.Effects))
		for i, x := range r.Effects {
			effects[i] = string(x)
		}
		rows = append(rows, []string{code(r.From.String()), string(r.What), orDash(code(string(r.Class)), r.Class == ""),
			orDash(string(r.If), r.If == ""), code(string(r.Event)), codeRule(r.Code), orDash(string(r.Wait), r.Wait == ""),
			orDash(string(r.Change), r.Change == ""), orDash(strings.Join(effects, ", "), len(effects) == 0)})
	}
	p.table([]string{"From", "What", "Class", "If", "Event", "Code", "Next", "Change", "Effects"}, rows)

	p.heading(2, "Events")
	p.para("Events are stored in every history record. %s has no source state: it opens each history.", code(string(transitions.Created)))
	rows = [][]string{{code(string(transitions.Created)), "[*] → " + code(transitions.Initial.String())}}
	for _, ev := range transitions.Events() {
		var edges []string
		for _, e := range table {
			if e.Event == ev {
				edges = append(edges, code(e.From.String())+" → "+code(e.To.String()))
			}
		}
		rows = append(rows, []string{code(string(ev)), strings.Join(edges, ", ")})
	}
	p.table([]string{"Event", "Edges"}, rows)

	return p.Bytes(), nil
}

// eventsFrom lists, as inline code, the events that leave s, in table order.
func eventsFrom(table []transitions.Edge, s states.State) []string {
	var out []string
	for _, e := range table {
		if e.From == s {
			out = append(out, code(string(e.Event)))
		}
	}
	return out
}

// orDash returns "—" for an empty cell.
func orDash(s string, empty bool) string {
	if empty {
		return "—"
	}
	return s
}

// codeRule describes the code a rule records.
func codeRule(c transitions.CodeRule) string {
	switch c {
	case transitions.NoCode:
		return "—"
	case transitions.AnswerCode, transitions.KeptCode:
		return string(c)
	}
	return code(string(c))
}
