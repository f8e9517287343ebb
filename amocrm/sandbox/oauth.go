package sandbox

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Lifetimes documented by amoCRM.
const (
	CodeTTL         = 20 * time.Minute
	AccessTokenTTL  = 86400 * time.Second
	RefreshTokenTTL = 90 * 24 * time.Hour
	WidgetTokenTTL  = 1800 * time.Second
	installTimeout  = 3 * time.Second
	hookTimeout     = 3 * time.Second
	apiDomain       = "api-b.amocrm.ru"
)

type tokenRequest struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	GrantType    string `json:"grant_type"`
	Code         string `json:"code"`
	RefreshToken string `json:"refresh_token"`
	RedirectURI  string `json:"redirect_uri"`
}

func oauthProblem(c *call, hint string) {
	writeJSON(c.w, http.StatusBadRequest, contentProblem, map[string]any{
		"hint":   hint,
		"title":  "Некорректный запрос",
		"type":   "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
		"status": http.StatusBadRequest,
		"detail": "В запросе отсутствует ряд параметров или параметры невалидны",
	})
}

// accessToken serves POST /oauth2/access_token for both grants, JSON or
// form-encoded.
func (s *Sandbox) accessToken(c *call) {
	body, err := readLimited(c.r.Body, maxOAuthBody)
	if errors.Is(err, errBodyTooLarge) {
		oauthProblem(c, "Request body too large")
		return
	}
	if err != nil {
		oauthProblem(c, "Cannot read the request")
		return
	}
	var req tokenRequest
	media, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if media == "application/json" || (media == "" && strings.HasPrefix(strings.TrimSpace(string(body)), "{")) {
		if json.Unmarshal(body, &req) != nil {
			oauthProblem(c, "Malformed JSON")
			return
		}
	} else {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			oauthProblem(c, "Malformed form")
			return
		}
		req = tokenRequest{
			ClientID: form.Get("client_id"), ClientSecret: form.Get("client_secret"),
			GrantType: form.Get("grant_type"), Code: form.Get("code"),
			RefreshToken: form.Get("refresh_token"), RedirectURI: form.Get("redirect_uri"),
		}
	}
	if req.ClientID != s.cfg.ClientID || !hmac.Equal([]byte(req.ClientSecret), []byte(s.cfg.ClientSecret)) {
		oauthProblem(c, "Client authentication failed")
		return
	}
	if req.RedirectURI != s.cfg.RedirectURI {
		oauthProblem(c, "Invalid redirect uri")
		return
	}
	now := s.clock.Now()
	hostAcc := s.accountBySubdomain(subdomainOf(c.r.Host))
	var g *grant
	switch req.GrantType {
	case "authorization_code":
		g = s.st.Codes[req.Code]
		switch {
		case req.Code == "":
			oauthProblem(c, "Check the `code` parameter")
			return
		case g == nil:
			oauthProblem(c, "Cannot decrypt the authorization code")
			return
		case g.Used || g.Revoked:
			oauthProblem(c, "Authorization code has been revoked")
			return
		case !now.Before(g.ExpiresAt):
			oauthProblem(c, "Authorization code has expired")
			return
		}
	case "refresh_token":
		g = s.st.Refresh[req.RefreshToken]
		switch {
		case req.RefreshToken == "":
			oauthProblem(c, "Check the `refresh_token` parameter")
			return
		case g == nil:
			oauthProblem(c, "Cannot decrypt the refresh token")
			return
		case g.Used || g.Revoked:
			oauthProblem(c, "Token has been revoked")
			return
		case !now.Before(g.ExpiresAt):
			oauthProblem(c, "Token has expired")
			return
		}
	default:
		oauthProblem(c, "The authorization grant type is not supported by the authorization server.")
		return
	}
	acc := s.st.Accounts[g.AccountID]
	if acc == nil || (hostAcc != nil && hostAcc != acc) {
		oauthProblem(c, "Invalid account")
		return
	}
	g.Used = true
	access, refresh, err := s.issueTokens(acc, g.UserID)
	if err != nil {
		c.fail(http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(c.w, http.StatusOK, "application/json", map[string]any{
		"token_type":    "Bearer",
		"expires_in":    int(AccessTokenTTL.Seconds()),
		"server_time":   now.Unix(),
		"access_token":  access,
		"refresh_token": refresh,
	})
}

// issueTokens mints an access JWT and a refresh token. Caller holds s.mu.
func (s *Sandbox) issueTokens(acc *account, userID int64) (access, refresh string, err error) {
	now := s.clock.Now()
	claims := jwt.MapClaims{
		"aud":         s.cfg.ClientID,
		"jti":         uuid.NewString(),
		"iat":         now.Unix(),
		"nbf":         now.Unix(),
		"exp":         now.Add(AccessTokenTTL).Unix(),
		"sub":         strconv.FormatInt(userID, 10),
		"grant_type":  "",
		"account_id":  acc.ID,
		"base_domain": "amocrm.ru",
		"version":     2,
		"scopes":      []string{"crm", "files", "files_delete", "notifications", "push_notifications"},
		"hash_uuid":   uuid.NewString(),
		"api_domain":  apiDomain,
	}
	access, err = jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(s.st.SigningKey))
	if err != nil {
		return "", "", fmt.Errorf("sandbox: sign access token (account %d): %w", acc.ID, err)
	}
	refresh = "def50200" + randomHex(160)
	s.st.Access[access] = &grant{AccountID: acc.ID, UserID: userID, ExpiresAt: now.Add(AccessTokenTTL)}
	s.st.Refresh[refresh] = &grant{AccountID: acc.ID, UserID: userID, ExpiresAt: now.Add(RefreshTokenTTL)}
	return access, refresh, nil
}

// newCode stores a fresh authorization code for the account admin. Caller
// holds s.mu.
func (s *Sandbox) newCode(acc *account) string {
	code := "def50200" + randomHex(96)
	s.st.Codes[code] = &grant{AccountID: acc.ID, UserID: acc.admin().ID, ExpiresAt: s.clock.Now().Add(CodeTTL)}
	return code
}

// currentSubdomain serves GET /oauth2/account/current/subdomain, identified
// by X-Refresh-Token.
func (s *Sandbox) currentSubdomain(c *call) {
	g := s.st.Refresh[c.r.Header.Get("X-Refresh-Token")]
	if g == nil || g.Revoked || !s.clock.Now().Before(g.ExpiresAt) {
		c.fail(http.StatusUnauthorized, "Invalid refresh token")
		return
	}
	acc := s.st.Accounts[g.AccountID]
	c.ok(map[string]any{"id": acc.ID, "subdomain": acc.Subdomain, "domain": "amocrm.ru", "top_level_domain": "ru"})
}

// InstallResult reports the install or disable-hook call: Status is the
// HTTP status received, 0 when the call failed with Error.
type InstallResult struct {
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Install issues a fresh authorization code and calls the redirect URI as
// amoCRM does on a widget install: GET with code, referer, from_widget and
// platform, 3 s timeout, response ignored, no retry. It returns
// ErrAccountNotFound for an unknown account; call failures are reported in
// the result.
func (s *Sandbox) Install(ctx context.Context, accountID int64) (InstallResult, error) {
	s.mu.Lock()
	acc := s.st.Accounts[accountID]
	if acc == nil {
		s.mu.Unlock()
		return InstallResult{}, ErrAccountNotFound
	}
	code := s.newCode(acc)
	referer := acc.Subdomain + ".amocrm.ru"
	s.mu.Unlock()

	u, err := url.Parse(s.cfg.RedirectURI)
	if err != nil {
		return InstallResult{Error: err.Error()}, nil
	}
	q := u.Query()
	q.Set("code", code)
	q.Set("referer", referer)
	q.Set("from_widget", "1")
	q.Set("platform", "1")
	u.RawQuery = q.Encode()
	return s.fireGet(ctx, u.String(), installTimeout), nil
}

func (s *Sandbox) fireGet(ctx context.Context, target string, timeout time.Duration) InstallResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return InstallResult{Error: err.Error()}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return InstallResult{Error: err.Error()}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return InstallResult{Status: resp.StatusCode}
}

// Uninstall revokes every code and token of the account (the API then
// answers 401) and, when DisableHookURL is set, calls it with account_id,
// client_uuid and the HMAC signature. The result is zero without a hook.
func (s *Sandbox) Uninstall(ctx context.Context, accountID int64) (InstallResult, error) {
	s.mu.Lock()
	if s.st.Accounts[accountID] == nil {
		s.mu.Unlock()
		return InstallResult{}, ErrAccountNotFound
	}
	for _, set := range []map[string]*grant{s.st.Codes, s.st.Access, s.st.Refresh} {
		for _, g := range set {
			if g.AccountID == accountID {
				g.Revoked = true
			}
		}
	}
	s.mu.Unlock()
	if s.cfg.DisableHookURL == "" {
		return InstallResult{}, nil
	}
	u, err := url.Parse(s.cfg.DisableHookURL)
	if err != nil {
		return InstallResult{Error: err.Error()}, nil
	}
	id := strconv.FormatInt(accountID, 10)
	q := u.Query()
	q.Set("account_id", id)
	q.Set("client_uuid", s.cfg.ClientID)
	q.Set("signature", DisableHookSignature(s.cfg.ClientID, s.cfg.ClientSecret, id))
	u.RawQuery = q.Encode()
	return s.fireGet(ctx, u.String(), hookTimeout), nil
}

// DisableHookSignature is hex(HMAC-SHA256(key=clientSecret,
// msg=clientID+"|"+accountID)), the signature amoCRM puts on the disable hook.
func DisableHookSignature(clientID, clientSecret, accountID string) string {
	mac := hmac.New(sha256.New, []byte(clientSecret))
	mac.Write([]byte(clientID + "|" + accountID))
	return hex.EncodeToString(mac.Sum(nil))
}

// WidgetTokenOptions selects the user and the defects of a minted widget
// token. UserID 0 means the account admin.
type WidgetTokenOptions struct {
	UserID       int64 `json:"user_id"`
	Expired      bool  `json:"expired"`
	WrongAud     bool  `json:"wrong_aud"`
	BadSignature bool  `json:"bad_signature"`
}

// WidgetToken mints a disposable X-Auth-Token as amoCRM's $authorizedAjax
// sends it: HS256 with the client secret, 30-minute life. It returns
// ErrAccountNotFound or ErrInvalid for an unknown user.
func (s *Sandbox) WidgetToken(accountID int64, opts WidgetTokenOptions) (string, error) {
	s.mu.Lock()
	acc := s.st.Accounts[accountID]
	if acc == nil {
		s.mu.Unlock()
		return "", ErrAccountNotFound
	}
	u := acc.admin()
	if opts.UserID != 0 {
		u = acc.user(opts.UserID)
	}
	if u == nil {
		s.mu.Unlock()
		return "", fmt.Errorf("sandbox: widget token: user %d: %w", opts.UserID, ErrInvalid)
	}
	sub, accID, userID, isAdmin := acc.Subdomain, acc.ID, u.ID, u.IsAdmin
	s.mu.Unlock()

	aud := s.cfg.RedirectURI
	if ru, err := url.Parse(s.cfg.RedirectURI); err == nil {
		aud = ru.Scheme + "://" + ru.Host
	}
	if opts.WrongAud {
		aud = "https://wrong-audience.example"
	}
	iat := s.clock.Now()
	if opts.Expired {
		iat = iat.Add(-2 * WidgetTokenTTL)
	}
	claims := jwt.MapClaims{
		"iss":         "https://" + sub + ".amocrm.ru",
		"aud":         aud,
		"jti":         uuid.NewString(),
		"iat":         iat.Unix(),
		"nbf":         iat.Unix(),
		"exp":         iat.Add(WidgetTokenTTL).Unix(),
		"account_id":  accID,
		"user_id":     userID,
		"subdomain":   sub,
		"client_uuid": s.cfg.ClientID,
		"is_admin":    isAdmin,
	}
	key := []byte(s.cfg.ClientSecret)
	if opts.BadSignature {
		key = []byte("not-the-client-secret")
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sandbox: widget token (account %d): %w", accountID, err)
	}
	return token, nil
}

// AccessTokenForUser issues an access token as if userID had granted the
// integration, so tests can call the API with a non-admin's rights. It
// returns ErrAccountNotFound or ErrInvalid for an unknown user.
func (s *Sandbox) AccessTokenForUser(accountID, userID int64) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acc := s.st.Accounts[accountID]
	if acc == nil {
		return "", ErrAccountNotFound
	}
	if acc.user(userID) == nil {
		return "", fmt.Errorf("sandbox: access token: user %d: %w", userID, ErrInvalid)
	}
	access, _, err := s.issueTokens(acc, userID)
	return access, err
}
