package widgetauth_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/redistest"
	"github.com/svyazka/svyazka/backend/widgetauth"
)

const (
	clientID = "0b0832f6-9a0b-4b1e-8a11-3f3f7b1d2c55"
	secret   = "integration-secret"
)

type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newAuth(t testing.TB) (*widgetauth.Authenticator, *clock) {
	t.Helper()
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	a, err := widgetauth.New(widgetauth.Config{
		ClientID: clientID, ClientSecret: secret,
		RedirectURI: "https://api.svyazka.ru/oauth/amocrm/callback",
		SessionKey:  []byte("0123456789abcdef0123456789abcdef"),
		Replay:      widgetauth.RedisReplayGuard{Client: redistest.Client(t), Now: c.Now},
		Now:         c.Now,
	})
	require.NoError(t, err)
	return a, c
}

func claims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": "https://clinic.amocrm.ru", "aud": "https://api.svyazka.ru", "jti": uuid.NewString(),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(30 * time.Minute).Unix(),
		"account_id": 12345678, "user_id": 87654321, "subdomain": "clinic", "client_uuid": clientID, "is_admin": true,
	}
}

func sign(t testing.TB, c jwt.MapClaims, key string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(key))
	require.NoError(t, err)
	return s
}

func signB(b *testing.B, c jwt.MapClaims) string { return sign(b, c, secret) }

func TestVerifyAmoToken(t *testing.T) {
	t.Parallel()
	a, clk := newAuth(t)
	ctx := context.Background()
	now := clk.Now()

	t.Run("OK", func(t *testing.T) {
		got, err := a.VerifyAmoToken(ctx, sign(t, claims(now), secret))
		require.NoError(t, err)
		require.EqualValues(t, 12345678, got.AccountID)
		require.EqualValues(t, 87654321, got.UserID)
		require.Equal(t, "clinic", got.Subdomain)
		require.True(t, got.IsAdmin)
	})
	t.Run("OKWithinLeeway", func(t *testing.T) {
		c := claims(now)
		c["exp"] = now.Add(-10 * time.Second).Unix()
		_, err := a.VerifyAmoToken(ctx, sign(t, c, secret))
		require.NoError(t, err)
	})
	t.Run("OKKommo", func(t *testing.T) {
		c := claims(now)
		c["iss"], c["subdomain"] = "https://clinic.kommo.com", "clinic"
		_, err := a.VerifyAmoToken(ctx, sign(t, c, secret))
		require.NoError(t, err)
	})

	noneToken := func() string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(now)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		require.NoError(t, err)
		return s
	}
	hs512 := func() string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS512, claims(now)).SignedString([]byte(secret))
		require.NoError(t, err)
		return s
	}
	with := func(key string, value any) string {
		c := claims(now)
		if value == nil {
			delete(c, key)
		} else {
			c[key] = value
		}
		return sign(t, c, secret)
	}
	replayed := sign(t, claims(now), secret)
	_, err := a.VerifyAmoToken(ctx, replayed)
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		token string
		msg   string
	}{
		"ErrEmpty":          {"", "Нет токена"},
		"ErrGarbage":        {"not.a.jwt", "повреждён"},
		"ErrExpired":        {with("exp", now.Add(-time.Minute).Unix()), "срок действия истёк"},
		"ErrNoExpiry":       {with("exp", nil), "нет обязательного поля"},
		"ErrNotYetValid":    {with("nbf", now.Add(5*time.Minute).Unix()), "ещё не действует"},
		"ErrIssuedInFuture": {with("iat", now.Add(5*time.Minute).Unix()), "ещё не действует"},
		"ErrWrongAudience":  {with("aud", "https://evil.example"), "другого адреса"},
		"ErrWrongSignature": {sign(t, claims(now), "another-secret"), "неверная подпись"},
		"ErrAlgNone":        {noneToken(), "Токен amoCRM отклонён"},
		"ErrAlgHS512":       {hs512(), "Токен amoCRM отклонён"},
		"ErrOtherClient":    {with("client_uuid", "11111111-1111-4111-8111-111111111111"), "другой интеграции"},
		"ErrIssuerNotAmo":   {with("iss", "https://clinic.evil.ru"), "издатель"},
		"ErrIssuerHTTP":     {with("iss", "http://clinic.amocrm.ru"), "издатель"},
		"ErrSubdomainDiff":  {with("subdomain", "other"), "поддомен"},
		"ErrNoAccount":      {with("account_id", 0), "нет аккаунта"},
		"ErrNoJTI":          {with("jti", nil), "jti"},
		"ErrReplayedJTI":    {replayed, "уже использован"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := a.VerifyAmoToken(ctx, tc.token)
			require.Error(t, err)
			require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err))
			require.Contains(t, apperr.MessageOf(err), tc.msg)
		})
	}
}

func TestTicketsAndSessions(t *testing.T) {
	t.Parallel()
	a, clk := newAuth(t)
	ctx := context.Background()
	who := widgetauth.Session{AccountID: 5, InstallSeq: 1, UserID: 77, IsAdmin: true}

	t.Run("TicketOnce", func(t *testing.T) {
		ticket, exp, err := a.IssueTicket(who)
		require.NoError(t, err)
		require.WithinDuration(t, clk.Now().Add(widgetauth.TicketTTL), exp, time.Second)
		got, err := a.RedeemTicket(ctx, ticket)
		require.NoError(t, err)
		require.EqualValues(t, 5, got.AccountID)
		require.EqualValues(t, 77, got.UserID)
		_, err = a.RedeemTicket(ctx, ticket)
		require.ErrorContains(t, err, "уже использована")
	})
	t.Run("ErrTicketExpired", func(t *testing.T) {
		ticket, _, err := a.IssueTicket(who)
		require.NoError(t, err)
		clk.Advance(widgetauth.TicketTTL + time.Minute)
		_, err = a.RedeemTicket(ctx, ticket)
		require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err))
		require.Contains(t, apperr.MessageOf(err), "устарела")
	})
	t.Run("SessionOK", func(t *testing.T) {
		session, _, err := a.IssueSession(who)
		require.NoError(t, err)
		got, err := a.CheckSession("Bearer " + session)
		require.NoError(t, err)
		require.Equal(t, who.AccountID, got.AccountID)
	})
	t.Run("ErrSessionExpired", func(t *testing.T) {
		session, _, err := a.IssueSession(who)
		require.NoError(t, err)
		clk.Advance(widgetauth.SessionTTL + time.Minute)
		_, err = a.CheckSession(session)
		require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err))
	})
	t.Run("ErrKindsDoNotMix", func(t *testing.T) {
		ticket, _, err := a.IssueTicket(who)
		require.NoError(t, err)
		_, err = a.CheckSession(ticket)
		require.Error(t, err, "a ticket is not a session")
		session, _, err := a.IssueSession(who)
		require.NoError(t, err)
		_, err = a.RedeemTicket(ctx, session)
		require.Error(t, err, "a session is not a ticket")
	})
	t.Run("ErrForeignKey", func(t *testing.T) {
		other, _ := newAuth(t)
		session, _, err := other.IssueSession(widgetauth.Session{AccountID: 6, InstallSeq: 1, UserID: 1})
		require.NoError(t, err)
		_, err = a.CheckSession(session)
		require.Error(t, err)
	})
	t.Run("ErrAmoTokenIsNotSession", func(t *testing.T) {
		_, err := a.CheckSession(sign(t, claims(clk.Now()), secret))
		require.Error(t, err)
	})
}
