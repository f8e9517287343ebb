package amocrm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Token is an account's OAuth pair. Its String and LogValue hide the
// secrets, so a Token printed or logged by mistake leaks nothing.
type Token struct {
	AccessToken  string
	RefreshToken string
	ExpiresAt    time.Time
	// RevokedAt is set once the access was found revoked; zero otherwise.
	RevokedAt time.Time
}

// String implements fmt.Stringer without the secrets.
func (t Token) String() string {
	return fmt.Sprintf("amocrm.Token{expires %s, revoked %t}", t.ExpiresAt.UTC().Format(time.RFC3339), !t.RevokedAt.IsZero())
}

// GoString implements fmt.GoStringer without the secrets.
func (t Token) GoString() string { return t.String() }

// Revoked reports whether the token was marked revoked.
func (t Token) Revoked() bool { return !t.RevokedAt.IsZero() }

// TokenStore keeps accounts' tokens (encrypted at rest). The backend's
// Postgres store implements it; amocrmtest.Tokens is an in-memory one with
// the same contract, for tests.
type TokenStore interface {
	// Tokens returns the account's token, revoked or not; the store's
	// not-found error when the account has none.
	Tokens(ctx context.Context, accountID int64) (Token, error)
	// SaveTokens stores a new pair (after an install), clearing any revocation.
	SaveTokens(ctx context.Context, accountID int64, t Token) error
	// UpdateTokens locks the account's row (SELECT … FOR UPDATE) in a
	// transaction, calls fn with the current token and stores what fn
	// returns; fn's error rolls back and is returned. Concurrent callers, in
	// any process, run fn one at a time.
	UpdateTokens(ctx context.Context, accountID int64, fn func(cur Token) (Token, error)) (Token, error)
	// MarkRevoked records that the account's access was revoked at the
	// given time (keeping an earlier mark).
	MarkRevoked(ctx context.Context, accountID int64, at time.Time) error
}

// Exchange trades an authorization code from the install redirect for a
// token pair, which the caller stores with TokenStore.SaveTokens. ref.ID may
// be 0 before the account exists. It returns ErrInvalidGrant when the code
// is wrong, used or expired (20 minutes), ErrTransient, ErrRateLimited or
// ErrMalformed otherwise.
func (c *Client) Exchange(ctx context.Context, ref AccountRef, code string) (Token, error) {
	if code == "" {
		return Token{}, fmt.Errorf("amocrm: exchange code (account %d): %w: empty code", ref.ID, ErrInvalidGrant)
	}
	t, err := c.grant(ctx, ref, map[string]string{"grant_type": "authorization_code", "code": code})
	if err != nil {
		return Token{}, fmt.Errorf("amocrm: exchange code (account %d): %w", ref.ID, err)
	}
	return t, nil
}

// accessToken returns a usable token for the account, refreshing it first
// when it expires within refreshMargin.
func (c *Client) accessToken(ctx context.Context, ref AccountRef) (Token, error) {
	t, err := c.tokens.Tokens(ctx, ref.ID)
	if err != nil {
		return Token{}, fmt.Errorf("amocrm: tokens (account %d): %w", ref.ID, err)
	}
	if t.Revoked() {
		return Token{}, fmt.Errorf("amocrm: tokens (account %d): %w", ref.ID, ErrRevoked)
	}
	if c.expiresSoon(t) {
		return c.refresh(ctx, ref, t.AccessToken)
	}
	return t, nil
}

func (c *Client) expiresSoon(t Token) bool { return !t.ExpiresAt.After(c.now().Add(refreshMargin)) }

// Refresh rotates the account's token pair now (unless another process has
// just done so) and returns the current token. It returns ErrRevoked when
// amoCRM rejects the refresh token, and marks the account's token revoked.
func (c *Client) Refresh(ctx context.Context, ref AccountRef) (Token, error) {
	t, err := c.tokens.Tokens(ctx, ref.ID)
	if err != nil {
		return Token{}, fmt.Errorf("amocrm: tokens (account %d): %w", ref.ID, err)
	}
	return c.refresh(ctx, ref, t.AccessToken)
}

// refresh rotates the pair under the store's row lock. stale is the access
// token the caller found expiring or rejected: if the locked row already
// holds another, still fresh one, another worker refreshed first and that
// token is used, because the single-use refresh token in hand is dead.
func (c *Client) refresh(ctx context.Context, ref AccountRef, stale string) (Token, error) {
	t, err := c.tokens.UpdateTokens(ctx, ref.ID, func(cur Token) (Token, error) {
		if cur.Revoked() {
			return cur, ErrRevoked
		}
		if cur.AccessToken != stale && !c.expiresSoon(cur) {
			return cur, nil
		}
		next, err := c.grant(ctx, ref, map[string]string{"grant_type": "refresh_token", "refresh_token": cur.RefreshToken})
		if errors.Is(err, ErrInvalidGrant) {
			return cur, fmt.Errorf("%w: %w", ErrRevoked, err)
		}
		return next, err
	})
	if errors.Is(err, ErrRevoked) {
		c.log.WarnContext(ctx, "amoCRM access revoked", "account_id", ref.ID, "err", err)
		if merr := c.tokens.MarkRevoked(context.WithoutCancel(ctx), ref.ID, c.now().UTC()); merr != nil {
			c.log.ErrorContext(ctx, "mark token revoked failed", "account_id", ref.ID, "err", merr)
		}
	}
	if err != nil {
		return Token{}, fmt.Errorf("amocrm: refresh token (account %d): %w", ref.ID, err)
	}
	return t, nil
}

// tokenResponse is the answer of /oauth2/access_token.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// grant posts one OAuth grant. It is not retried: a refresh whose answer
// was lost has already spent the refresh token.
func (c *Client) grant(ctx context.Context, ref AccountRef, fields map[string]string) (Token, error) {
	const path = "/oauth2/access_token"
	base, err := c.baseURL(ref)
	if err != nil {
		return Token{}, err
	}
	body := map[string]string{"client_id": c.cfg.ClientID, "client_secret": c.cfg.ClientSecret, "redirect_uri": c.cfg.RedirectURI}
	for k, v := range fields {
		body[k] = v
	}
	data, err := json.Marshal(body)
	if err != nil {
		return Token{}, err
	}
	if err := c.gate(ctx, ref.ID, http.MethodPost, path); err != nil {
		return Token{}, err
	}
	secrets := []string{c.cfg.ClientSecret, fields["refresh_token"], fields["code"]}
	res, err := c.send(ctx, http.MethodPost, base.JoinPath(path).String(), data, "", c.cfg.OAuthTimeout)
	if err != nil {
		if ctx.Err() != nil {
			return Token{}, ctx.Err()
		}
		return Token{}, &Error{Kind: ErrTransient, Method: http.MethodPost, Path: path, Detail: redact(err.Error(), secrets...), Attempts: 1}
	}
	if e := classify(res, http.MethodPost, path, secrets...); e != nil {
		var ve *ValidationError
		var ae *Error
		switch {
		case errors.As(e, &ve):
			return Token{}, &Error{Kind: ErrInvalidGrant, Method: ve.Method, Path: path, Status: ve.Status, Title: ve.Title, Detail: ve.Detail, Attempts: 1}
		case errors.As(e, &ae) && ae.Status == http.StatusUnauthorized:
			ae.Kind = ErrInvalidGrant
		case errors.As(e, &ae) && ae.Status == http.StatusForbidden && res.html:
			return Token{}, c.block(ctx, ref.ID, ae)
		}
		return Token{}, e
	}
	var tr tokenResponse
	if err := decode(res.body, &tr); err != nil || tr.AccessToken == "" || tr.RefreshToken == "" || tr.ExpiresIn <= 0 {
		detail := "missing access_token, refresh_token or expires_in"
		if err != nil {
			detail = err.Error()
		}
		return Token{}, &Error{Kind: ErrMalformed, Method: http.MethodPost, Path: path, Status: res.status, Detail: detail, Attempts: 1}
	}
	return Token{AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken,
		ExpiresAt: c.now().Add(time.Duration(tr.ExpiresIn) * time.Second).UTC()}, nil
}
