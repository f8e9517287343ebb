package accountstate_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/accountstate"
	"github.com/svyazka/svyazka/billing"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func trial(days int) billing.Subscription {
	return billing.NewTrial(now, days)
}

func db(name string, conn, dbs accountstate.LinkStatus) accountstate.Database {
	seen := now.Add(-time.Minute)
	return accountstate.Database{Name: name, Connector: conn, Database: dbs, SeenAt: &seen}
}

func TestConnectorGoesStale(t *testing.T) {
	t.Parallel()
	at := func(ago time.Duration) *time.Time { t := now.Add(-ago); return &t }
	tests := []struct {
		name string
		in   accountstate.Database
		want accountstate.LinkStatus
	}{
		{"FreshHeartbeat", accountstate.Database{Connector: accountstate.Connected, SeenAt: at(time.Minute)}, accountstate.Connected},
		{"JustInside", accountstate.Database{Connector: accountstate.Connected, SeenAt: at(accountstate.ConnectorStaleAfter)}, accountstate.Connected},
		{"ErrSilent", accountstate.Database{Connector: accountstate.Connected, SeenAt: at(accountstate.ConnectorStaleAfter + time.Second)}, accountstate.Disconnected},
		{"ErrNeverSeen", accountstate.Database{Connector: accountstate.Connected}, accountstate.Disconnected},
		{"UnknownStaysUnknown", accountstate.Database{Connector: accountstate.Unknown}, accountstate.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tt.in.Effective(now).Connector)
		})
	}
	f := accountstate.Facts{InstallFormDone: true, Subscription: trial(14), Setup: accountstate.SetupConfigured, Now: now,
		Databases: []accountstate.Database{{Name: "Центр", Connector: accountstate.Connected, Database: accountstate.Connected, SeenAt: at(time.Hour)}}}
	ov := accountstate.Evaluate(f)
	require.False(t, ov.Start.Allowed, "a silent connector cannot carry a sync")
	require.Contains(t, ov.Problems[accountstate.TabIntegration], "нет связи с коннектором")
}

func TestEvaluateStart(t *testing.T) {
	t.Parallel()
	const (
		up   = accountstate.Connected
		down = accountstate.Disconnected
	)
	ready := accountstate.Facts{InstallFormDone: true, Subscription: trial(14), Setup: accountstate.SetupConfigured,
		Databases: []accountstate.Database{db("Филиал 1", up, up)}, Now: now}
	tests := []struct {
		name   string
		change func(*accountstate.Facts)
		want   []accountstate.Reason
	}{
		{"OK", func(*accountstate.Facts) {}, nil},
		{"OneWorkingOfTwo", func(f *accountstate.Facts) {
			f.Databases = append(f.Databases, db("Филиал 2", down, accountstate.Unknown))
		}, nil},
		{"ErrInstallForm", func(f *accountstate.Facts) { f.InstallFormDone = false }, []accountstate.Reason{accountstate.ReasonInstallForm}},
		{"ErrTrialOver", func(f *accountstate.Facts) { f.Subscription = trial(-1) }, []accountstate.Reason{accountstate.ReasonSubscription}},
		{"ErrSuspended", func(f *accountstate.Facts) { f.Subscription.Status = billing.StatusSuspended }, []accountstate.Reason{accountstate.ReasonSubscription}},
		{"ErrNoDatabase", func(f *accountstate.Facts) { f.Databases = nil }, []accountstate.Reason{accountstate.ReasonNoDatabase}},
		{"ErrConnectorDown", func(f *accountstate.Facts) { f.Databases[0].Connector = down }, []accountstate.Reason{accountstate.ReasonNoDatabase}},
		{"ErrDatabaseDown", func(f *accountstate.Facts) { f.Databases[0].Database = down }, []accountstate.Reason{accountstate.ReasonNoDatabase}},
		{"ErrSetupRunning", func(f *accountstate.Facts) { f.Setup = accountstate.SetupRunning }, []accountstate.Reason{accountstate.ReasonSetup}},
		{"ErrSetupFailed", func(f *accountstate.Facts) { f.Setup = accountstate.SetupFailed }, []accountstate.Reason{accountstate.ReasonSetup}},
		{"ErrSetupBroken", func(f *accountstate.Facts) { f.Setup = accountstate.SetupDrift }, []accountstate.Reason{accountstate.ReasonSetup}},
		{"ErrEverything", func(f *accountstate.Facts) {
			*f = accountstate.Facts{Subscription: trial(-1), Setup: accountstate.SetupNotConfigured, Now: now}
		}, []accountstate.Reason{accountstate.ReasonInstallForm, accountstate.ReasonSubscription, accountstate.ReasonNoDatabase, accountstate.ReasonSetup}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := ready
			f.Databases = append([]accountstate.Database(nil), ready.Databases...)
			tt.change(&f)
			got := accountstate.Evaluate(f)
			if diff := cmp.Diff(tt.want, got.Start.Missing); diff != "" {
				t.Fatalf("missing (-want +got):\n%s", diff)
			}
			require.Equal(t, len(tt.want) == 0, got.Start.Allowed)
			for _, r := range got.Start.Missing {
				require.NotEqual(t, string(r), r.Label(), "every reason has a label")
			}
		})
	}
}

func TestEvaluateProblems(t *testing.T) {
	t.Parallel()
	base := accountstate.Facts{InstallFormDone: true, Subscription: trial(14), Setup: accountstate.SetupConfigured, Now: now,
		Databases: []accountstate.Database{db("Центр", accountstate.Connected, accountstate.Connected)}}
	tests := []struct {
		name   string
		change func(*accountstate.Facts)
		want   map[accountstate.Tab]string // substring of each tab's tooltip; absent tabs must have none
	}{
		{"OK", func(*accountstate.Facts) {}, map[accountstate.Tab]string{}},
		{"InstallFormFirst", func(f *accountstate.Facts) {
			f.InstallFormDone = false
			f.Databases[0].Connector = accountstate.Disconnected
		}, map[accountstate.Tab]string{accountstate.TabIntegration: "Заполните данные установки"}},
		{"NoDatabase", func(f *accountstate.Facts) { f.Databases = nil }, map[accountstate.Tab]string{accountstate.TabIntegration: "Получить токен"}},
		{"ConnectorDownNamesDatabase", func(f *accountstate.Facts) { f.Databases[0].Connector = accountstate.Disconnected },
			map[accountstate.Tab]string{accountstate.TabIntegration: "«Центр»: нет связи с коннектором"}},
		{"DatabaseDown", func(f *accountstate.Facts) { f.Databases[0].Database = accountstate.Disconnected },
			map[accountstate.Tab]string{accountstate.TabIntegration: "«Центр»: нет связи с базой IDENT"}},
		{"Expired", func(f *accountstate.Facts) { f.Subscription = trial(-3) },
			map[accountstate.Tab]string{accountstate.TabSubscription: "Срок действия истёк"}},
		{"Drift", func(f *accountstate.Facts) {
			f.Setup, f.SetupDetail = accountstate.SetupDrift, "удалено поле «Врач»"
		},
			map[accountstate.Tab]string{accountstate.TabSettings: "Данные не передаются: удалено поле «Врач»"}},
		{"SetupFailed", func(f *accountstate.Facts) {
			f.Setup, f.SetupDetail = accountstate.SetupFailed, "воронка «Повторный приём»: лимит воронок"
		},
			map[accountstate.Tab]string{accountstate.TabSettings: "Автонастройка не удалась: воронка «Повторный приём»"}},
		{"Errors", func(f *accountstate.Facts) { f.RecentErrors = 3 },
			map[accountstate.Tab]string{accountstate.TabEvents: "ошибок: 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := base
			f.Databases = append([]accountstate.Database(nil), base.Databases...)
			tt.change(&f)
			got := accountstate.Evaluate(f).Problems
			require.Len(t, got, len(tt.want), "tabs with problems: %v", got)
			for tab, sub := range tt.want {
				require.True(t, strings.Contains(got[tab], sub), "tab %s: %q lacks %q", tab, got[tab], sub)
			}
		})
	}
}

func TestStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		got    accountstate.Status
		state  accountstate.LinkStatus
		label  string
		inHint string
	}{
		{"ConnectorUp", accountstate.ConnectorStatus(accountstate.Connected), accountstate.Connected, "Подключение выполнено", ""},
		{"ConnectorDown", accountstate.ConnectorStatus(accountstate.Disconnected), accountstate.Disconnected, "Подключение не выполнено", "действующий токен"},
		{"ConnectorNever", accountstate.ConnectorStatus(accountstate.ParseLinkStatus("garbage")), accountstate.Unknown, "Подключение не выполнено", "«Подключить»"},
		{"DatabaseDownWithDetail", accountstate.DatabaseStatus(accountstate.Disconnected, "Неверный пароль"), accountstate.Disconnected, "Подключение не выполнено", "Неверный пароль. Проверьте"},
		{"DatabaseUnknown", accountstate.DatabaseStatus(accountstate.Unknown, ""), accountstate.Unknown, "Подключение не выполнено", "Статус появится"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.state, tt.got.State)
			require.Equal(t, tt.label, tt.got.Label)
			require.Contains(t, tt.got.Hint, tt.inHint)
		})
	}
}

func TestSubscriptionHint(t *testing.T) {
	t.Parallel()
	msk, err := time.LoadLocation("Europe/Moscow")
	require.NoError(t, err)
	end := time.Date(2026, 12, 14, 22, 0, 0, 0, time.UTC) // already the 15th in Moscow
	sub := billing.Subscription{Status: billing.StatusTrial, TrialEndsAt: &end}
	require.Contains(t, accountstate.SubscriptionHint(billing.StatusTrial, sub, msk), "15.12.2026")
	require.Contains(t, accountstate.SubscriptionHint(billing.StatusActive, billing.Subscription{}, msk), "—", "no crash without a date")
}
