// Package phone normalises phone numbers to E.164 (+79161234567), the form
// Svyazka stores, compares and sends to amoCRM.
package phone

import (
	"errors"
	"strings"
)

// ErrInvalid is returned for text that is not a phone number.
var ErrInvalid = errors.New("phone: not a phone number")

// Normalize accepts the ways people write Russian and international numbers —
// "8 (916) 123-45-67", "+7 916 123 45 67", "9161234567", "+375 29 123 45 67" —
// and returns E.164. A Russian number needs 10 national digits; an
// international one (written with +) 8 to 15 digits.
func Normalize(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", ErrInvalid
	}
	plus := strings.HasPrefix(s, "+")
	var digits strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits.WriteRune(r)
		case strings.ContainsRune(" -()+.\u00a0", r):
		default:
			return "", ErrInvalid
		}
	}
	d := digits.String()
	switch {
	case len(d) == 11 && (d[0] == '8' || d[0] == '7') && !(plus && d[0] == '8'):
		return "+7" + d[1:], nil
	case len(d) == 10 && !plus && d[0] == '9':
		return "+7" + d, nil
	case plus && len(d) >= 8 && len(d) <= 15 && d[0] != '0':
		return "+" + d, nil
	}
	return "", ErrInvalid
}
