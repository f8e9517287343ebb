package ident

// idSet is a set of non-negative ids kept as a bitmap from Base up, so the
// cursor stays small: IDENT's reception ids grow with creation time, and the
// ids of a window's receptions are close together (20 000 receptions in a
// range of 25 000 ids take about 3 KB). JSON: {"base":N,"bits":"<base64>"}.
type idSet struct {
	Base int64  `json:"base"`
	Bits []byte `json:"bits"`
}

// Add puts id into the set; negative ids are ignored.
func (s *idSet) Add(id int64) {
	if id < 0 {
		return
	}
	if len(s.Bits) == 0 {
		s.Base = id &^ 7
	}
	if id < s.Base {
		newBase := id &^ 7
		grow := make([]byte, (s.Base-newBase)/8, int64(len(s.Bits))+(s.Base-newBase)/8)
		s.Bits = append(grow, s.Bits...)
		s.Base = newBase
	}
	i := (id - s.Base) / 8
	for int64(len(s.Bits)) <= i {
		s.Bits = append(s.Bits, 0)
	}
	s.Bits[i] |= 1 << uint((id-s.Base)%8)
}

// Has reports whether id is in the set.
func (s *idSet) Has(id int64) bool {
	if s == nil || id < s.Base {
		return false
	}
	i := (id - s.Base) / 8
	if i >= int64(len(s.Bits)) {
		return false
	}
	return s.Bits[i]&(1<<uint((id-s.Base)%8)) != 0
}

// Len is the number of ids in the set.
func (s *idSet) Len() int {
	n := 0
	s.Each(func(int64) bool { n++; return true })
	return n
}

// Each calls fn for every id in ascending order until fn returns false.
func (s *idSet) Each(fn func(id int64) bool) {
	if s == nil {
		return
	}
	for i, b := range s.Bits {
		if b == 0 {
			continue
		}
		for bit := range 8 {
			if b&(1<<uint(bit)) != 0 {
				if !fn(s.Base + int64(i)*8 + int64(bit)) {
					return
				}
			}
		}
	}
}
