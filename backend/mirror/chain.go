package mirror

import (
	"slices"
	"time"

	"github.com/svyazka/svyazka/connector/protocol"
)

// Link is what ResolveChains needs of a reception: the reception it was
// moved from (TransferFromID, "" when none) and its plan start (naive local
// time) to pick the current reception of a fork.
type Link struct {
	TransferFromID string
	PlanStart      string
}

// Chain is the receptions IDENT moved one into another: one lead in amoCRM.
type Chain struct {
	// Root is the key the lead is stored under: the earliest reception of
	// the chain that we have. It changes when an earlier reception arrives
	// (see MissingFrom), so a caller looks a lead up by any member's id.
	Root string
	// Current is the reception whose id, date, doctor and state the lead
	// carries: the leaf of the chain (a reception nothing was moved from);
	// of several leaves (a fork: two receptions moved from one), the one with
	// the later plan start, then the higher id.
	Current string
	// Members are every reception of the chain, Root and Current included,
	// in id order.
	Members []string
	// MissingFrom is the reception Root says it was moved from when we do not
	// have it; "" otherwise.
	MissingFrom string
	// Cycle is true when the links formed a loop; it was cut before the
	// member with the lowest id, which became Root.
	Cycle bool
}

// Chains is the outcome of ResolveChains.
type Chains struct {
	chains     map[string]*Chain // by root
	rootOf     map[string]string
	superseded map[string]bool
}

// ResolveChains groups receptions (by id) into chains along TransferFromID.
// It always terminates: a link to a reception not in links ends the chain
// there (Chain.MissingFrom), a link to itself is ignored, and a loop is cut
// before its lowest id (Chain.Cycle). An unreadable plan start sorts before
// every readable one. Ids compare as numbers.
func ResolveChains(links map[string]Link) Chains {
	ids := make([]string, 0, len(links))
	for id := range links {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareIDs)

	pred := make(map[string]string, len(links))
	for _, id := range ids {
		if from := links[id].TransferFromID; from != "" && from != id {
			if _, ok := links[from]; ok {
				pred[id] = from
			}
		}
	}
	cut := cutCycles(ids, pred)

	out := Chains{chains: map[string]*Chain{}, rootOf: make(map[string]string, len(ids)), superseded: map[string]bool{}}
	for _, id := range ids {
		if p, ok := pred[id]; ok {
			out.superseded[p] = true
		}
	}
	for _, id := range ids {
		root := out.findRoot(id, pred)
		c := out.chains[root]
		if c == nil {
			from := links[root].TransferFromID
			c = &Chain{Root: root, Cycle: cut[root] || from == root}
			if _, have := links[from]; from != "" && !have {
				c.MissingFrom = from
			}
			out.chains[root] = c
		}
		// ids are in order, so Members stay sorted.
		c.Members = append(c.Members, id)
		if !out.superseded[id] && (c.Current == "" || laterLeaf(links, id, c.Current)) {
			c.Current = id
		}
	}
	return out
}

// cutCycles removes one link from every loop, the one leaving the loop's
// lowest id, and returns the ids whose link was cut. Every reception has at
// most one predecessor, so each connected group holds at most one loop.
func cutCycles(ids []string, pred map[string]string) map[string]bool {
	const (
		unseen = iota
		onPath
		done
	)
	mark := make(map[string]int, len(ids))
	cut := map[string]bool{}
	for _, start := range ids {
		var path []string
		id := start
		for mark[id] == unseen {
			mark[id] = onPath
			path = append(path, id)
			p, ok := pred[id]
			if !ok {
				break
			}
			id = p
		}
		if mark[id] == onPath && pred[id] != "" {
			// id is on the current path and has a predecessor: the path from id
			// onward is a loop.
			loop := path[slices.Index(path, id):]
			if len(loop) > 0 && pred[loop[len(loop)-1]] == id {
				lowest := slices.MinFunc(loop, compareIDs)
				delete(pred, lowest)
				cut[lowest] = true
			}
		}
		for _, p := range path {
			mark[p] = done
		}
	}
	return cut
}

func (c *Chains) findRoot(id string, pred map[string]string) string {
	var path []string
	for {
		if r, ok := c.rootOf[id]; ok {
			id = r
			break
		}
		p, ok := pred[id]
		if !ok {
			break
		}
		path = append(path, id)
		id = p
	}
	c.rootOf[id] = id
	for _, p := range path {
		c.rootOf[p] = id
	}
	return id
}

// laterLeaf reports whether leaf a should be current rather than leaf b.
func laterLeaf(links map[string]Link, a, b string) bool {
	ta, tb := planStartKey(links[a].PlanStart), planStartKey(links[b].PlanStart)
	if !ta.Equal(tb) {
		return ta.After(tb)
	}
	return compareIDs(a, b) > 0
}

func planStartKey(s string) time.Time {
	t, err := parseNaive(s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Of returns the chain reception id belongs to, and false when id was not
// given to ResolveChains.
func (c Chains) Of(id string) (Chain, bool) {
	root, ok := c.rootOf[id]
	if !ok {
		return Chain{}, false
	}
	ch := *c.chains[root]
	ch.Members = slices.Clone(ch.Members)
	return ch, true
}

// Superseded reports whether a reception we have was moved from id: id is
// never shown itself; its chain's lead carries a later reception.
func (c Chains) Superseded(id string) bool { return c.superseded[id] }

// All returns every chain in the order of its root id.
func (c Chains) All() []Chain {
	out := make([]Chain, 0, len(c.chains))
	for _, ch := range c.chains {
		cp := *ch
		cp.Members = slices.Clone(ch.Members)
		out = append(out, cp)
	}
	slices.SortFunc(out, func(a, b Chain) int { return compareIDs(a.Root, b.Root) })
	return out
}

// LinkOf returns the Link of rec for ResolveChains.
func LinkOf(rec protocol.IdentReception) Link {
	return Link{TransferFromID: rec.TransferFromID, PlanStart: rec.PlanStart}
}
