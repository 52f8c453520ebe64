package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"sort"
	"strings"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// The state diagram is drawn here, server-side, as SVG, from
// transitions.Table: no JavaScript library has to be vendored and the page
// works offline. The layout is a grid derived from the table:
//
//   - a state's column is its longest distance from the initial state over
//     forward edges (an edge to a state found earlier by a breadth-first
//     walk, or to itself, is a loop back), and terminal states take the
//     last column;
//   - the shortest path from the initial state to Done runs along the
//     middle row, the states where a task stops without an answer (Failed,
//     NeedsAccountFix) along the bottom row, and the states a task passes
//     through on a detour (Backoff, Resubmitting) along the top row.
//
// Edges are quadratic curves, bent apart when two states point at each
// other and bent around any box a straight line would cross.

const (
	nodeW   = 150.0
	nodeH   = 40.0
	colGap  = 100.0
	rowGap  = 110.0
	padding = 16.0
)

type point struct{ x, y float64 }

// layout is the position of each state's box centre.
type layout struct {
	pos map[states.State]point
	col map[states.State]int
}

var machineLayout = computeLayout(transitions.Table())

func computeLayout(table []transitions.Edge) layout {
	// Breadth-first from the initial state: depth decides which edges go
	// forward, parents give the shortest path to Done.
	depth := map[states.State]int{transitions.Initial: 0}
	parent := map[states.State]states.State{}
	queue := []states.State{transitions.Initial}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, e := range table {
			if e.From != s {
				continue
			}
			if _, seen := depth[e.To]; !seen {
				depth[e.To] = depth[s] + 1
				parent[e.To] = s
				queue = append(queue, e.To)
			}
		}
	}
	col := map[states.State]int{}
	for range states.All() { // longest path over forward edges, a DAG
		for _, e := range table {
			if depth[e.To] > depth[e.From] && col[e.To] < col[e.From]+1 {
				col[e.To] = col[e.From] + 1
			}
		}
	}
	last := 0
	for _, s := range states.All() {
		if !s.Terminal() {
			last = max(last, col[s])
		}
	}
	happy := map[states.State]bool{transitions.Initial: true}
	for s := states.Done; s != transitions.Initial; s = parent[s] {
		if _, ok := parent[s]; !ok {
			break // Done unreachable: no happy row
		}
		happy[s] = true
	}
	type cell struct{ col, row int }
	taken := map[cell]bool{}
	l := layout{pos: map[states.State]point{}, col: col}
	for _, s := range states.All() {
		if s.Terminal() {
			col[s] = last + 1
		}
		row := 0
		switch {
		case happy[s]:
			row = 1
		case s.Settled():
			row = 2
		}
		for taken[cell{col[s], row}] {
			row++
		}
		taken[cell{col[s], row}] = true
		l.pos[s] = point{float64(col[s])*(nodeW+colGap) + nodeW/2, float64(row)*rowGap + nodeH/2}
	}
	return l
}

// box is a rectangle: minimum and maximum corners.
type box struct{ min, max point }

func nodeBox(p point, pad float64) box {
	return box{point{p.x - nodeW/2 - pad, p.y - nodeH/2 - pad}, point{p.x + nodeW/2 + pad, p.y + nodeH/2 + pad}}
}

func (b box) contains(p point) bool {
	return p.x >= b.min.x && p.x <= b.max.x && p.y >= b.min.y && p.y <= b.max.y
}

func (b *box) add(p point) {
	b.min.x, b.min.y = math.Min(b.min.x, p.x), math.Min(b.min.y, p.y)
	b.max.x, b.max.y = math.Max(b.max.x, p.x), math.Max(b.max.y, p.y)
}

// curve is a path: a quadratic Bézier (p0, c, p1), or a cubic loop when
// loop is set (c1 and c2 its control points).
type curve struct {
	p0, c, p1 point
	loop      bool
	c1, c2    point
}

// at returns the curve's point at t in [0, 1].
func (c curve) at(t float64) point {
	u := 1 - t
	if c.loop {
		a, b, d, e := u*u*u, 3*u*u*t, 3*u*t*t, t*t*t
		return point{a*c.p0.x + b*c.c1.x + d*c.c2.x + e*c.p1.x, a*c.p0.y + b*c.c1.y + d*c.c2.y + e*c.p1.y}
	}
	return point{u*u*c.p0.x + 2*u*t*c.c.x + t*t*c.p1.x, u*u*c.p0.y + 2*u*t*c.c.y + t*t*c.p1.y}
}

func (c curve) path() string {
	if c.loop {
		return fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", c.p0.x, c.p0.y, c.c1.x, c.c1.y, c.c2.x, c.c2.y, c.p1.x, c.p1.y)
	}
	return fmt.Sprintf("M%.1f,%.1f Q%.1f,%.1f %.1f,%.1f", c.p0.x, c.p0.y, c.c.x, c.c.y, c.p1.x, c.p1.y)
}

// clip returns where the ray from a box's centre c towards p leaves the
// box (plus a small gap, so that arrowheads stay visible).
func clip(c, p point) point {
	dx, dy := p.x-c.x, p.y-c.y
	if dx == 0 && dy == 0 {
		return c
	}
	hw, hh := nodeW/2+3, nodeH/2+3
	s := math.Inf(1)
	if dx != 0 {
		s = math.Min(s, hw/math.Abs(dx))
	}
	if dy != 0 {
		s = math.Min(s, hh/math.Abs(dy))
	}
	return point{c.x + dx*s, c.y + dy*s}
}

// route returns the curve of an edge: bent by bend pixels to the right of
// its direction, and further, alternating sides, while it crosses a box.
func route(l layout, k edgeKey, bend float64) curve {
	from, to := l.pos[k.from], l.pos[k.to]
	if k.from == k.to {
		x0, x1, y := from.x-30, from.x+30, from.y-nodeH/2
		return curve{p0: point{x0, y}, p1: point{x1, y}, loop: true,
			c1: point{x0 - 14, y - 58}, c2: point{x1 + 14, y - 58}}
	}
	mid := point{(from.x + to.x) / 2, (from.y + to.y) / 2}
	dx, dy := to.x-from.x, to.y-from.y
	n := math.Hypot(dx, dy)
	perp := point{-dy / n, dx / n} // right of the direction, in screen coordinates
	make := func(k float64) curve {
		// The control point is twice the curve's offset at its middle.
		c := point{mid.x + 2*k*perp.x, mid.y + 2*k*perp.y}
		return curve{p0: clip(from, c), c: c, p1: clip(to, c)}
	}
	crosses := func(cv curve) bool {
		for s, p := range l.pos {
			if s == k.from || s == k.to {
				continue
			}
			b := nodeBox(p, 8)
			for i := 1; i < 20; i++ {
				if b.contains(cv.at(float64(i) / 20)) {
					return true
				}
			}
		}
		return false
	}
	for extra := 0.0; extra <= 200; extra += 20 {
		for _, sign := range []float64{1, -1} {
			k := bend + sign*extra
			if cv := make(k); !crosses(cv) {
				return cv
			}
			if extra == 0 {
				break
			}
		}
	}
	return make(bend)
}

// edgeKey is a pair of states; parallel edges of the table are drawn as one
// arrow listing their events.
type edgeKey struct{ from, to states.State }

type diagramEdge struct {
	key    edgeKey
	events []transitions.Event
	taken  map[transitions.Event]int // how often this task took each event
}

// diagramSVG returns the machine as SVG with current filled, the states a
// task visited outlined, and the edges it took (its history) drawn bold
// with their events and counts.
func diagramSVG(current states.State, hist []persist.Record) template.HTML {
	l := machineLayout
	var edges []*diagramEdge
	index := map[edgeKey]*diagramEdge{}
	for _, e := range transitions.Table() {
		k := edgeKey{e.From, e.To}
		d, ok := index[k]
		if !ok {
			d = &diagramEdge{key: k, taken: map[transitions.Event]int{}}
			index[k] = d
			edges = append(edges, d)
		}
		d.events = append(d.events, e.Event)
	}
	visited := map[states.State]bool{}
	startTaken := false
	for _, r := range hist {
		visited[r.To] = true
		if r.From == "" {
			startTaken = true
			continue
		}
		if d, ok := index[edgeKey{r.From, r.To}]; ok {
			d.taken[r.Event]++
		}
	}

	// The picture's extent: every box, curve and label, plus padding.
	bounds := nodeBox(l.pos[transitions.Initial], 0)
	for _, p := range l.pos {
		b := nodeBox(p, 0)
		bounds.add(b.min)
		bounds.add(b.max)
	}
	var body, labels strings.Builder
	var placed []box // labels drawn so far

	init := l.pos[transitions.Initial]
	start := point{init.x - nodeW/2 - 34, init.y}
	bounds.add(point{start.x - 8, start.y})
	fmt.Fprintf(&body, `<circle cx="%.1f" cy="%.1f" r="6" class="start"/>`, start.x, start.y)
	fmt.Fprintf(&body, `<path d="M%.1f,%.1f L%.1f,%.1f" class="%s" marker-end="url(#%s)"><title>created</title></path>`,
		start.x+6, start.y, init.x-nodeW/2-3, init.y, edgeClass(startTaken), markerOf(startTaken))

	// Untaken edges first, so the task's path is drawn on top.
	sort.SliceStable(edges, func(i, j int) bool { return len(edges[i].taken) == 0 && len(edges[j].taken) > 0 })
	for _, d := range edges {
		bend := 0.0
		if _, twoWay := index[edgeKey{d.key.to, d.key.from}]; twoWay && d.key.from != d.key.to {
			bend = 16
		}
		c := route(l, d.key, bend)
		for i := 0; i <= 20; i++ {
			bounds.add(c.at(float64(i) / 20))
		}
		drawEdge(&body, &labels, &bounds, &placed, c, d)
	}

	for _, s := range states.All() {
		p := l.pos[s]
		cls := "node"
		switch {
		case s == current:
			cls += " current"
		case visited[s]:
			cls += " visited"
		}
		if s.Terminal() {
			cls += " terminal"
		}
		fmt.Fprintf(&body, `<g class="%s" data-state="%s"><rect x="%.1f" y="%.1f" width="%.0f" height="%.0f" rx="10"/>`,
			cls, s, p.x-nodeW/2, p.y-nodeH/2, nodeW, nodeH)
		if s.Terminal() {
			fmt.Fprintf(&body, `<rect class="inner" x="%.1f" y="%.1f" width="%.0f" height="%.0f" rx="7"/>`,
				p.x-nodeW/2+4, p.y-nodeH/2+4, nodeW-8, nodeH-8)
		}
		fmt.Fprintf(&body, `<text x="%.1f" y="%.1f">%s</text></g>`, p.x, p.y+5, s)
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="diagram" viewBox="%.0f %.0f %.0f %.0f" role="img" aria-label="state diagram, current state %s">`,
		bounds.min.x-padding, bounds.min.y-padding, bounds.max.x-bounds.min.x+2*padding, bounds.max.y-bounds.min.y+2*padding,
		template.HTMLEscapeString(string(current)))
	b.WriteString(`<defs>` +
		`<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker>` +
		`<marker id="arrow-taken" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="5" markerHeight="5" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead taken"/></marker>` +
		`</defs>`)
	b.WriteString(body.String())
	b.WriteString(labels.String()) // over every arrow and box
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // our own constants; every text is escaped
}

func edgeClass(taken bool) string {
	if taken {
		return "edge taken"
	}
	return "edge"
}

func markerOf(taken bool) string {
	if taken {
		return "arrow-taken"
	}
	return "arrow"
}

// drawEdge writes one arrow into body and, for a taken edge, its label
// into labels.
func drawEdge(body, labels *strings.Builder, bounds *box, placed *[]box, c curve, d *diagramEdge) {
	taken := len(d.taken) > 0
	names := make([]string, len(d.events))
	for i, e := range d.events {
		names[i] = string(e)
	}
	fmt.Fprintf(body, `<path d="%s" class="%s" marker-end="url(#%s)"><title>%s → %s: %s</title></path>`,
		c.path(), edgeClass(taken), markerOf(taken), d.key.from, d.key.to, template.HTMLEscapeString(strings.Join(names, ", ")))
	if !taken {
		return
	}
	var parts []string
	for _, e := range d.events {
		if n := d.taken[e]; n > 0 {
			if n > 1 {
				parts = append(parts, fmt.Sprintf("%s ×%d", e, n))
			} else {
				parts = append(parts, string(e))
			}
		}
	}
	text := strings.Join(parts, ", ")
	w := float64(len([]rune(text)))*6.1 + 12
	mid := placeLabel(c, w, placed)
	lb := box{point{mid.x - w/2, mid.y - 9}, point{mid.x + w/2, mid.y + 8}}
	*placed = append(*placed, lb)
	bounds.add(lb.min)
	bounds.add(lb.max)
	fmt.Fprintf(labels, `<g class="label"><rect x="%.1f" y="%.1f" width="%.1f" height="17" rx="4"/><text x="%.1f" y="%.1f">%s</text></g>`,
		lb.min.x, lb.min.y, w, mid.x, mid.y+4, template.HTMLEscapeString(text))
}

// placeLabel returns where on c a label w wide goes: the middle, else the
// nearest point that overlaps no label placed before.
func placeLabel(c curve, w float64, placed *[]box) point {
	for _, t := range []float64{0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8} {
		p := c.at(t)
		lb := box{point{p.x - w/2 - 2, p.y - 11}, point{p.x + w/2 + 2, p.y + 10}}
		free := true
		for _, o := range *placed {
			if lb.min.x < o.max.x && o.min.x < lb.max.x && lb.min.y < o.max.y && o.min.y < lb.max.y {
				free = false
				break
			}
		}
		if free {
			return p
		}
	}
	return c.at(0.5)
}
