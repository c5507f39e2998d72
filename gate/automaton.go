package gate

import "slices"

// automaton is an Aho-Corasick keyword matcher compiled to a full DFA over
// bytes. Keywords match ASCII-case-insensitively; callers that need exact
// case compare the original bytes afterwards.
//
// Transitions are stored pre-multiplied by 256 so that the hot loop is one
// load and one compare per input byte. States are numbered so that every
// state with an output is >= accept: clean text never leaves the loop.
type automaton struct {
	trans  []uint32  // (state<<8 | byte) -> next state<<8
	accept uint32    // first accepting state, <<8
	out    [][]int32 // outputs of accepting state s at out[(s-accept)>>8]
	lens   []int     // keyword lengths
	maxLen int       // longest keyword or mute string
}

func foldByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

type trieNode struct {
	next [256]int32
	fail int32
	out  []int32
	mute bool // inherits no outputs through its failure link
}

// newAutomaton compiles keywords (none may be empty) into a DFA. A mute
// string is a context in which outputs of its suffixes are suppressed: with
// the mute "12", the keyword "2" is not reported when it follows a "1".
func newAutomaton(keywords, mutes []string) *automaton {
	size := 1 // the trie has at most one node per byte of its strings
	for _, s := range slices.Concat(keywords, mutes) {
		size += len(s)
	}
	nodes := make([]trieNode, 1, size) // nodes are 1 KiB: never regrow the slice
	nodes[0] = newTrieNode()
	lens := make([]int, len(keywords))
	for k, kw := range keywords {
		lens[k] = len(kw)
		s := insert(&nodes, kw)
		nodes[s].out = append(nodes[s].out, int32(k))
	}
	for _, m := range mutes {
		if s := insert(&nodes, m); len(nodes[s].out) == 0 {
			nodes[s].mute = true
		}
	}
	order := linkFailures(nodes)
	a := compile(nodes, order, lens)
	for _, w := range append(append([]string(nil), keywords...), mutes...) {
		a.maxLen = max(a.maxLen, len(w))
	}
	return a
}

// insert adds the path of kw to the trie and returns its final node.
func insert(nodes *[]trieNode, kw string) int32 {
	s := int32(0)
	for i := 0; i < len(kw); i++ {
		c := foldByte(kw[i])
		if (*nodes)[s].next[c] < 0 {
			*nodes = append(*nodes, newTrieNode())
			(*nodes)[s].next[c] = int32(len(*nodes) - 1)
		}
		s = (*nodes)[s].next[c]
	}
	return s
}

func newTrieNode() trieNode {
	var n trieNode
	for i := range n.next {
		n.next[i] = -1
	}
	return n
}

// linkFailures turns the trie into a complete goto function (BFS), merges
// outputs along failure links and returns the BFS order of the states.
func linkFailures(nodes []trieNode) []int32 {
	order := []int32{0}
	for c := range 256 {
		if nodes[0].next[c] < 0 {
			nodes[0].next[c] = 0
		} else {
			order = append(order, nodes[0].next[c])
		}
	}
	for i := 1; i < len(order); i++ {
		s := order[i]
		f := nodes[s].fail
		if !nodes[s].mute {
			nodes[s].out = append(nodes[s].out, nodes[f].out...)
		}
		for c := range 256 {
			t := nodes[s].next[c]
			if t < 0 {
				nodes[s].next[c] = nodes[f].next[c]
				continue
			}
			nodes[t].fail = nodes[f].next[c]
			order = append(order, t)
		}
	}
	return order
}

// compile renumbers states (non-accepting first) and folds case into the
// transition table.
func compile(nodes []trieNode, order []int32, lens []int) *automaton {
	id := make([]uint32, len(nodes))
	n := uint32(0)
	for _, s := range order {
		if len(nodes[s].out) == 0 {
			id[s] = n
			n++
		}
	}
	a := &automaton{accept: n << 8, lens: lens}
	for _, s := range order {
		if len(nodes[s].out) > 0 {
			id[s] = n
			n++
			a.out = append(a.out, nodes[s].out)
		}
	}
	a.trans = make([]uint32, int(n)<<8)
	for _, s := range order {
		row := int(id[s]) << 8
		for c := range 256 {
			a.trans[row+c] = id[nodes[s].next[foldByte(byte(c))]] << 8
		}
	}
	return a
}

// scan calls hit(keyword, end) for every keyword occurrence in buf, where
// end is the exclusive end offset of the occurrence. Occurrences are not
// reported in offset order.
//
// The DFA step is a chain of dependent loads, so one walk is bound by load
// latency. scan splits buf into four parts and walks them in one loop: the
// CPU overlaps the four chains. Every walk but the first starts maxLen-1
// bytes before its part so that its state is exact from the part's start
// on, and reports only occurrences ending inside its part.
func (a *automaton) scan(buf []byte, hit func(kw int32, end int)) {
	n := len(buf)
	q := n / 4
	if q < 4*a.maxLen {
		a.walk(buf, 0, 0, n, hit)
		return
	}
	t, acc := a.trans, a.accept
	// Part p covers ends in (lo[p], lo[p+1]]; its walk starts at from[p].
	lo := [5]int{0, q, 2 * q, 3 * q, n}
	var from [4]int
	for p := 1; p < 4; p++ {
		from[p] = lo[p] - a.maxLen + 1
	}
	b0, b1, b2, b3 := buf[from[0]:], buf[from[1]:], buf[from[2]:], buf[from[3]:]
	steps := lo[1] - from[0] // the shortest part: every walk can take this many steps
	b1, b2, b3 = b1[:steps], b2[:steps], b3[:steps]
	var s0, s1, s2, s3 uint32
	for k, c := range b0[:steps] {
		s0 = t[s0|uint32(c)]
		s1 = t[s1|uint32(b1[k])]
		s2 = t[s2|uint32(b2[k])]
		s3 = t[s3|uint32(b3[k])]
		if s0 >= acc || s1 >= acc || s2 >= acc || s3 >= acc {
			a.emitIn(s0, from[0]+k+1, lo[0], lo[1], hit)
			a.emitIn(s1, from[1]+k+1, lo[1], lo[2], hit)
			a.emitIn(s2, from[2]+k+1, lo[2], lo[3], hit)
			a.emitIn(s3, from[3]+k+1, lo[3], lo[4], hit)
		}
	}
	// Finish each walk that is longer than the first one.
	states := [4]uint32{s0, s1, s2, s3}
	for p := 1; p < 4; p++ {
		a.walkFrom(buf, states[p], from[p]+steps, lo[p], lo[p+1], hit)
	}
}

// walk runs the DFA over buf[from:to] from the start state, reporting
// occurrences that end in (lo, to].
func (a *automaton) walk(buf []byte, from, lo, to int, hit func(kw int32, end int)) {
	a.walkFrom(buf, 0, from, lo, to, hit)
}

// walkFrom continues a walk in state s at offset from up to to.
func (a *automaton) walkFrom(buf []byte, s uint32, from, lo, to int, hit func(kw int32, end int)) {
	t, acc := a.trans, a.accept
	for j := from; j < to; j++ {
		s = t[s|uint32(buf[j])]
		if s >= acc && j >= lo {
			a.emit(s, j+1, hit)
		}
	}
}

// emitIn reports the outputs of state s at end if end is in (lo, hi].
func (a *automaton) emitIn(s uint32, end, lo, hi int, hit func(kw int32, end int)) {
	if s >= a.accept && end > lo && end <= hi {
		a.emit(s, end, hit)
	}
}

// emit reports the outputs of accepting state s at end.
func (a *automaton) emit(s uint32, end int, hit func(kw int32, end int)) {
	for _, kw := range a.out[(s-a.accept)>>8] {
		hit(kw, end)
	}
}
