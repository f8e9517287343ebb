package setup

import (
	"strings"
	"unicode"
)

// Normalize returns the form in which two names are compared for reuse:
//   - letters are lower-cased; ё is е (and Ё is Е), so «приём» = «прием»;
//   - a decomposed й (и + U+0306) is composed, other combining marks dropped,
//     so names typed on different systems compare equal;
//   - every character that is neither a letter nor a digit — punctuation,
//     quotes of any kind («», "", „“, ‘’), dashes, brackets, symbols — counts as
//     a space: «Дата-рождения:» = «дата рождения», «"Пол"» = «пол»;
//   - runs of spaces (any Unicode space, NBSP included) collapse to one and the
//     ends are trimmed.
//
// Punctuation separates words rather than vanishing, so «Номер.карты» stays
// two words and never fuses into a different one; «№» is not «Номер».
func Normalize(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	space := false
	prev := rune(-1)
	for _, r := range name {
		switch {
		case r == '\u0306' && prev == 'и':
			// Replace the и just written with й.
			s := b.String()
			b.Reset()
			b.WriteString(strings.TrimSuffix(s, "и"))
			b.WriteRune('й')
			prev = 'й'
			continue
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			r = unicode.ToLower(r)
			if r == 'ё' {
				r = 'е'
			}
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(r)
			prev = r
		default:
			space = true
			prev = -1
		}
	}
	return b.String()
}

// SameName reports whether two names are the same after Normalize. Empty
// names never match.
func SameName(a, b string) bool {
	na := Normalize(a)
	return na != "" && na == Normalize(b)
}
