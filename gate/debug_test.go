package gate

import (
	"fmt"
	"sort"
	"testing"
	"time"
)

func TestDebugHits(t *testing.T) {
	e := builtinEngine()
	for name, data := range map[string][]byte{"clean": cleanText(1 << 20), "binary": randomBytes(1 << 20)} {
		counts := map[string]int{}
		e.ac.scan(data, func(kw int32, end int) {
			ref := &e.refs[kw]
			start := end - len(ref.a.Keyword)
			if !anchorOK(data, ref.a, start, end) {
				counts["rejected:"+ref.a.Keyword]++
				return
			}
			counts[ref.a.Keyword]++
		})
		var ks []string
		for k := range counts {
			ks = append(ks, k)
		}
		sort.Slice(ks, func(i, j int) bool { return counts[ks[i]] > counts[ks[j]] })
		for _, k := range ks[:min(25, len(ks))] {
			fmt.Println(name, k, counts[k])
		}
	}
}

func TestDebugRuleCost(t *testing.T) {
	data := denseText(1 << 18)
	for _, sc := range builtinScanners() {
		ps, ok := sc.(*patternScanner)
		if !ok {
			continue
		}
		for _, r := range ps.rules {
			one := newPatternScanner("x", nil)
			for i, o := range ps.owner {
				if o.rule == r.ID {
					one.anchors = append(one.anchors, ps.anchors[i])
					one.owner = append(one.owner, o)
				}
			}
			one.rules = []Rule{{ID: r.ID}}
			e := newEngine([]Scanner{one})
			start := time.Now()
			e.find(data)
			if d := time.Since(start); d > 2*time.Millisecond {
				fmt.Println(r.ID, d)
			}
		}
	}
}

func BenchmarkDFAOnly(b *testing.B) {
	e := builtinEngine()
	data := cleanText(8 << 20)
	b.SetBytes(int64(len(data)))
	n := 0
	for b.Loop() {
		e.ac.scan(data, func(kw int32, end int) { n++ })
	}
}
