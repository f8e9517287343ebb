package sandbox_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm/sandbox"
)

func TestWidgetSettingsPage(t *testing.T) {
	t.Parallel()
	get := func(t *testing.T, url string) (int, string) {
		resp, err := http.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	start := func(t *testing.T, widgetURL string) (*httptest.Server, sandbox.AccountInfo, *sandbox.Sandbox) {
		sb, err := sandbox.New(sandbox.Config{ClientID: "id", ClientSecret: "secret", RedirectURI: "http://127.0.0.1:1/cb",
			WidgetURL: widgetURL, WidgetTitle: "Связка"})
		require.NoError(t, err)
		t.Cleanup(func() { _ = sb.Close() })
		ts := httptest.NewServer(sb.Handler())
		t.Cleanup(ts.Close)
		info, err := sb.CreateAccount(sandbox.AccountOptions{Subdomain: "clinic", Users: 2})
		require.NoError(t, err)
		return ts, info, sb
	}

	t.Run("OK", func(t *testing.T) {
		ts, info, sb := start(t, "http://127.0.0.1:8080/widget/amo")
		id := strconv.FormatInt(info.AccountID, 10)
		status, body := get(t, ts.URL+"/accounts/"+id+"/settings/widget")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, `data-widget-url="http://127.0.0.1:8080/widget/amo"`)
		require.Contains(t, body, `data-user-id="`+strconv.FormatInt(info.AdminUserID, 10)+`"`)
		require.Contains(t, body, `<div id="list_page_holder">`)
		require.Contains(t, body, "Настройки › Связка")

		user, err := sb.AddUser(info.AccountID, sandbox.UserOptions{Name: "Ольга", IsActive: true})
		require.NoError(t, err)
		_, body = get(t, ts.URL+"/accounts/"+id+"/settings/widget?user_id="+strconv.FormatInt(user.ID, 10))
		require.Contains(t, body, `data-user-name="Ольга"`, "?user_id opens the page as that user")

		status, body = get(t, ts.URL+"/static/widget-host.js")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, "advancedSettings")
		status, body = get(t, ts.URL+"/static/jquery-3.7.1.min.js")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, "jQuery v3.7.1")
		status, _ = get(t, ts.URL+"/accounts/999/settings/widget")
		require.Equal(t, http.StatusNotFound, status)
	})
	t.Run("NoWidgetConfigured", func(t *testing.T) {
		ts, info, _ := start(t, "")
		status, body := get(t, ts.URL+"/accounts/"+strconv.FormatInt(info.AccountID, 10)+"/settings/widget")
		require.Equal(t, http.StatusNotFound, status)
		require.Contains(t, body, "no widget configured")
	})
}
