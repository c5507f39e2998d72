package gate

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
	nodes := []trieNode{newTrieNode()}
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
	return compile(nodes, order, lens)
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
// end is the exclusive end offset of the occurrence.
func (a *automaton) scan(buf []byte, hit func(kw int32, end int)) {
	t, acc := a.trans, a.accept
	s := uint32(0)
	for i, c := range buf {
		s = t[s|uint32(c)]
		if s >= acc {
			for _, kw := range a.out[(s-acc)>>8] {
				hit(kw, i+1)
			}
		}
	}
}
