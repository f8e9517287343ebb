package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/store/storetest"
)

// post sends JSON and decodes a JSON answer into out (when non-nil).
func post(t *testing.T, url string, headers map[string]string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(http.MethodPost, url, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(t, json.Unmarshal(raw, out), string(raw))
	}
	return resp.StatusCode
}

var sessionMetaRE = regexp.MustCompile(`<meta name="svyazka-session" content="([^"]+)">`)

// TestInstallLatencyAndLogHygiene runs the whole product (`svyazka run`)
// with secrets of its own, installs the widget the way amoCRM does and
// measures how long after amoCRM's redirect the widget's settings open
// (target: 2 s; the figure is logged, not asserted). Then it fills the
// install form with personal data, issues a connector token and makes
// requests that fail, and finally scans every line the process logged for
// the secrets and personal data it was given.
func TestInstallLatencyAndLogHygiene(t *testing.T) {
	t.Parallel()
	const (
		encryptionKey = "c2VjcmV0LWtleS1mb3ItbG9nLXNjYW4tdGVzdC0zMmI=" // 32 bytes
		clientSecret  = "client-secret-for-the-log-scan"
		dbPassword    = "db-password-for-the-log-scan"
		patientName   = "Сидорова Агафья"
		patientPhone  = "+79035557788"
	)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sandboxAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dbURL := storetest.NewURL(t) + "&password=" + dbPassword // trust auth ignores it; it must never be printed
	env := map[string]string{
		"DATABASE_URL": dbURL, "REDIS_URL": redisURL(t), "HTTP_ADDR": addr, "SANDBOX_ADDR": sandboxAddr,
		"ENCRYPTION_KEY": encryptionKey, "AMOCRM_CLIENT_SECRET": clientSecret, "LOG_LEVEL": "debug",
	}
	cmd := command(env, "run")
	cmd.Dir = t.TempDir()
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { stopProcess(t, cmd, &stderr) })
	api, amo := "http://"+addr, "http://"+sandboxAddr
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "Svyazka is running") }, 60*time.Second, 50*time.Millisecond,
		"the demo never came up:\n%s", stderr.String())

	var acc struct {
		AccountID int64 `json:"account_id"`
	}
	require.Equal(t, http.StatusCreated, post(t, amo+"/_sandbox/accounts", nil, map[string]any{"subdomain": "latency", "users": 2}, &acc))
	openSettings := func() (int, string) {
		var tok struct {
			Token string `json:"token"`
		}
		require.Equal(t, http.StatusOK, post(t, fmt.Sprintf("%s/_sandbox/accounts/%d/widget-token", amo, acc.AccountID), nil, map[string]any{}, &tok))
		var sess struct {
			IframeURL string `json:"iframe_url"`
		}
		status := post(t, api+"/api/widget/v1/session", map[string]string{"X-Auth-Token": tok.Token, "Origin": amo}, nil, &sess)
		return status, sess.IframeURL
	}
	start := time.Now()
	require.Equal(t, http.StatusOK, post(t, fmt.Sprintf("%s/_sandbox/accounts/%d/install", amo, acc.AccountID), nil, nil, nil))
	var iframeURL string
	require.Eventually(t, func() bool {
		var status int
		status, iframeURL = openSettings()
		return status == http.StatusOK
	}, 20*time.Second, 20*time.Millisecond, "the widget's settings never opened after install")
	t.Logf("install latency: amoCRM redirect → settings open: %s (target 2s)", time.Since(start).Round(time.Millisecond))

	resp, err := http.Get(iframeURL)
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	session := string(sessionMetaRE.FindSubmatch(page)[1])
	auth := map[string]string{"Authorization": "Bearer " + session}
	require.Equal(t, http.StatusOK, post(t, api+"/api/app/v1/install-form", auth, map[string]any{"name": patientName, "phone": "8 (903) 555-77-88", "consent": true}, nil))
	var issued struct {
		Token string `json:"token"`
	}
	require.Equal(t, http.StatusOK, post(t, api+"/api/app/v1/databases/token", auth, map[string]any{}, &issued))
	// Requests that fail, carrying the personal data.
	require.Equal(t, http.StatusBadRequest, post(t, api+"/api/app/v1/install-form", auth, map[string]any{"name": patientName + "\x00", "phone": patientPhone, "consent": true}, nil))
	require.Equal(t, http.StatusBadRequest, post(t, api+"/api/app/v1/install-form", auth, map[string]any{"name": patientName, "phone": patientPhone, "consent": "yes"}, nil))
	resp, err = http.Get(api + "/api/app/v1/events?q=" + patientPhone)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	stopProcess(t, cmd, &stderr)
	logs := stdout.String() + stderr.String()
	require.Contains(t, logs, `"msg":"configuration"`, "the scan reads the real log")
	for what, secret := range map[string]string{
		"encryption key": encryptionKey, "client secret": clientSecret, "database password": dbPassword,
		"connector token": issued.Token, "widget session": session, "iframe ticket": iframeURL[strings.Index(iframeURL, "ticket=")+7:],
		"name": patientName, "surname": "Сидорова", "phone": patientPhone, "phone digits": "9035557788", "phone as typed": "555-77-88",
	} {
		require.NotEmpty(t, secret)
		require.NotContains(t, logs, secret, "the logs contain the %s", what)
	}
}
