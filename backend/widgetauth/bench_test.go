package widgetauth_test

import (
	"context"
	"testing"

	"github.com/svyazka/svyazka/backend/widgetauth"
)

// BenchmarkVerifyAmoToken measures the check every widget open costs: JWT
// parse and claims, plus the Redis SET NX of the jti.
func BenchmarkVerifyAmoToken(b *testing.B) {
	a, clk := newAuth(b)
	tokens := make([]string, b.N)
	for i := range tokens {
		tokens[i] = signB(b, claims(clk.Now()))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.VerifyAmoToken(context.Background(), tokens[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSession measures issuing and checking our session token.
func BenchmarkSession(b *testing.B) {
	a, _ := newAuth(b)
	for i := 0; i < b.N; i++ {
		s, _, err := a.IssueSession(widgetauth.Session{AccountID: 1, InstallSeq: 1, UserID: 2})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.CheckSession(s); err != nil {
			b.Fatal(err)
		}
	}
}
