// Package widgetauth authenticates the widget running inside amoCRM.
//
// amoCRM signs a disposable token (HS256 with the integration's secret) for
// each $authorizedAjax call. Verify checks it strictly and refuses a replayed
// jti. On success the API issues two tokens of its own, signed with a key
// derived from ENCRYPTION_KEY: a one-use iframe ticket that lives two minutes
// (it travels in the iframe URL) and a session that the settings page sends as
// a Bearer header. Both are bound to one account and one amoCRM user, so a
// request can only ever reach that account's data. No cookies: the page is a
// third-party iframe, where browsers block them.
package widgetauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/apperr"
)

// Leeway tolerates clock skew between amoCRM and us on exp/nbf/iat.
const Leeway = 30 * time.Second

// Lifetimes of our own tokens.
const (
	TicketTTL  = 2 * time.Minute
	SessionTTL = 2 * time.Hour
)

// ReplayGuard remembers token ids until they expire.
type ReplayGuard interface {
	// Claim records jti until the given time and reports whether it was new.
	Claim(ctx context.Context, jti string, until time.Time) (bool, error)
}

// AmoClaims are the verified claims of an amoCRM disposable token.
type AmoClaims struct {
	AccountID  int64
	UserID     int64
	Subdomain  string
	Issuer     string
	IsAdmin    bool
	ClientUUID string
	ExpiresAt  time.Time
}

// Config configures an Authenticator; every field is required but Now.
type Config struct {
	ClientID     string
	ClientSecret string
	// RedirectURI is our OAuth redirect URI; the token's aud must be its scheme://host.
	RedirectURI string
	// SessionKey signs our tickets and sessions (32 bytes or more).
	SessionKey []byte
	Replay     ReplayGuard
	Now        func() time.Time
}

// Authenticator verifies amoCRM's tokens and issues and checks ours.
type Authenticator struct {
	cfg      Config
	audience string
	key      []byte
}

// New returns an Authenticator.
func New(cfg Config) (*Authenticator, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" || len(cfg.SessionKey) < 32 || cfg.Replay == nil {
		return nil, errors.New("widgetauth: ClientID, ClientSecret, a 32-byte SessionKey and Replay are required")
	}
	u, err := url.Parse(cfg.RedirectURI)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("widgetauth: redirect URI %q is not absolute", cfg.RedirectURI)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// A key of its own for sessions: the encryption key never signs anything directly.
	mac := hmac.New(sha256.New, cfg.SessionKey)
	mac.Write([]byte("svyazka widget session v1"))
	return &Authenticator{cfg: cfg, audience: u.Scheme + "://" + u.Host, key: mac.Sum(nil)}, nil
}

func unauthorized(format string, args ...any) error {
	return apperr.New(apperr.Unauthorized, format, args...)
}

type amoJWT struct {
	jwt.RegisteredClaims
	AccountID  int64  `json:"account_id"`
	UserID     int64  `json:"user_id"`
	Subdomain  string `json:"subdomain"`
	ClientUUID string `json:"client_uuid"`
	IsAdmin    bool   `json:"is_admin"`
}

// VerifyAmoToken checks an amoCRM disposable token: HS256 only (never none or
// another algorithm), our client secret, aud = our redirect URI's origin,
// iss = an amoCRM account host, exp/nbf/iat with Leeway, client_uuid = our
// client id, positive account and user ids, and a jti never seen before.
// Every failure is an apperr.Unauthorized saying what was wrong.
func (a *Authenticator) VerifyAmoToken(ctx context.Context, raw string) (AmoClaims, error) {
	raw = strings.TrimSpace(strings.TrimPrefix(raw, "Bearer "))
	if raw == "" {
		return AmoClaims{}, unauthorized("Нет токена amoCRM (заголовок X-Auth-Token).")
	}
	var c amoJWT
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return []byte(a.cfg.ClientSecret), nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithAudience(a.audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(a.cfg.Now),
	)
	if err != nil {
		return AmoClaims{}, unauthorized("Токен amoCRM отклонён: %s.", reason(err))
	}
	if c.ClientUUID != a.cfg.ClientID {
		return AmoClaims{}, unauthorized("Токен amoCRM выпущен для другой интеграции.")
	}
	if c.AccountID <= 0 || c.UserID <= 0 {
		return AmoClaims{}, unauthorized("В токене amoCRM нет аккаунта или пользователя.")
	}
	sub, err := subdomainOf(c.Issuer)
	if err != nil {
		return AmoClaims{}, unauthorized("Токен amoCRM: %v.", err)
	}
	if c.Subdomain != "" && !strings.EqualFold(c.Subdomain, sub) {
		return AmoClaims{}, unauthorized("Токен amoCRM: поддомен не совпадает с издателем.")
	}
	if c.ID == "" {
		return AmoClaims{}, unauthorized("В токене amoCRM нет идентификатора (jti).")
	}
	fresh, err := a.cfg.Replay.Claim(ctx, "amo:"+c.ID, c.ExpiresAt.Add(Leeway))
	if err != nil {
		return AmoClaims{}, apperr.Wrap(err, apperr.Unavailable, "Не удалось проверить токен, попробуйте ещё раз.")
	}
	if !fresh {
		return AmoClaims{}, unauthorized("Токен amoCRM уже использован.")
	}
	return AmoClaims{AccountID: c.AccountID, UserID: c.UserID, Subdomain: sub, Issuer: c.Issuer,
		IsAdmin: c.IsAdmin, ClientUUID: c.ClientUUID, ExpiresAt: c.ExpiresAt.Time}, nil
}

// subdomainOf checks that iss is https://{account host} (amocrm.Domains)
// and returns the account's subdomain.
func subdomainOf(iss string) (string, error) {
	u, err := url.Parse(iss)
	if err != nil || u.Scheme != "https" || u.Path != "" && u.Path != "/" || u.User != nil || u.Port() != "" {
		return "", errors.New("издатель не аккаунт amoCRM")
	}
	sub, _, err := amocrm.ParseAccountHost(u.Host)
	if err != nil {
		return "", errors.New("издатель не аккаунт amoCRM")
	}
	return sub, nil
}

func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "срок действия истёк"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "токен ещё не действует"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "токен выпущен для другого адреса"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "неверная подпись"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "нет обязательного поля"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "токен повреждён"
	}
	return "токен недействителен"
}

// Session is who a ticket or session token speaks for.
type Session struct {
	AccountID int64 // our accounts.id
	// InstallSeq is the account's install generation the session was issued
	// for; after a reinstall the account's is higher and the session is void.
	InstallSeq int64
	UserID     int64 // amoCRM user id
	IsAdmin    bool
	ExpiresAt  time.Time
}

const (
	kindTicket  = "ticket"
	kindSession = "session"
)

type ourJWT struct {
	jwt.RegisteredClaims
	Kind    string `json:"kind"`
	Account int64  `json:"acc"`
	User    int64  `json:"usr"`
	Admin   bool   `json:"adm,omitempty"`
	Install int64  `json:"ins"`
}

func (a *Authenticator) issue(kind string, s Session, ttl time.Duration) (string, time.Time, error) {
	now := a.cfg.Now().UTC()
	exp := now.Add(ttl)
	claims := ourJWT{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "svyazka", Subject: strconv.FormatInt(s.AccountID, 10), ID: uuid.NewString(),
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
		},
		Kind: kind, Account: s.AccountID, User: s.UserID, Admin: s.IsAdmin, Install: s.InstallSeq,
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("widgetauth: sign %s: %w", kind, err)
	}
	return signed, exp, nil
}

// IssueTicket returns a one-use iframe ticket for s and its expiry.
func (a *Authenticator) IssueTicket(s Session) (string, time.Time, error) {
	return a.issue(kindTicket, s, TicketTTL)
}

// IssueSession returns a session token for s and its expiry.
func (a *Authenticator) IssueSession(s Session) (string, time.Time, error) {
	return a.issue(kindSession, s, SessionTTL)
}

func (a *Authenticator) parse(kind, raw string) (Session, string, error) {
	var c ourJWT
	_, err := jwt.ParseWithClaims(strings.TrimSpace(raw), &c, func(*jwt.Token) (any, error) { return a.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer("svyazka"),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(5*time.Second),
		jwt.WithTimeFunc(a.cfg.Now),
	)
	if err != nil {
		return Session{}, "", err
	}
	if c.Kind != kind || c.Account <= 0 || c.Install <= 0 {
		return Session{}, "", jwt.ErrTokenInvalidClaims
	}
	return Session{AccountID: c.Account, InstallSeq: c.Install, UserID: c.User, IsAdmin: c.Admin, ExpiresAt: c.ExpiresAt.Time}, c.ID, nil
}

// RedeemTicket checks an iframe ticket and burns it: a second use fails.
func (a *Authenticator) RedeemTicket(ctx context.Context, raw string) (Session, error) {
	s, id, err := a.parse(kindTicket, raw)
	if err != nil {
		return Session{}, unauthorized("Ссылка на страницу настроек недействительна или устарела (%s). Откройте настройки виджета заново.", reason(err))
	}
	fresh, err := a.cfg.Replay.Claim(ctx, "ticket:"+id, s.ExpiresAt.Add(Leeway))
	if err != nil {
		return Session{}, apperr.Wrap(err, apperr.Unavailable, "Не удалось проверить ссылку, попробуйте ещё раз.")
	}
	if !fresh {
		return Session{}, unauthorized("Ссылка на страницу настроек уже использована. Откройте настройки виджета заново.")
	}
	return s, nil
}

// CheckSession verifies a session token.
func (a *Authenticator) CheckSession(raw string) (Session, error) {
	s, _, err := a.parse(kindSession, strings.TrimPrefix(strings.TrimSpace(raw), "Bearer "))
	if err != nil {
		return Session{}, unauthorized("Сессия истекла. Откройте настройки виджета заново.")
	}
	return s, nil
}
