package httpapi

// The connector API (/api/connector/v1), what svyazka-connector calls from a
// clinic's server. Every request is checked, in this order:
//   - the body is at most protocol.MaxBatchBytes (413 otherwise, however it
//     is sent);
//   - "Authorization: Bearer TOKEN" carries a connector token whose SHA-256
//     is a database's current token: a malformed or unknown token is 401, a
//     token replaced by «Получить токен» is 401 saying it was revoked, and a
//     token of an account whose widget is uninstalled is 401;
//   - each token has its own rate limit (429 with Retry-After);
//   - bodies are strict JSON (unknown fields and trailing data refused, 400);
//   - a batch is checked by backend/ingest: a bad batch is 400 and stores
//     nothing; bad records are listed in the answer while the good ones of
//     the same batch are kept; the answer is given only after the batch is
//     committed, and a resent batch id gets the stored answer.
// Errors use the standard body {"error":{"code","message"}}.

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/conntoken"
	"github.com/svyazka/svyazka/backend/ingest"
	"github.com/svyazka/svyazka/backend/ratelimit"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/connector/protocol"
	"github.com/svyazka/svyazka/jobs"
)

// ConnectorStore is the storage the connector API uses.
type ConnectorStore interface {
	ConnectorDatabase(ctx context.Context, tokenHash []byte) (store.ClinicDatabase, store.Account, error)
	PairConnector(ctx context.Context, in store.PairInput) (store.ClinicDatabase, error)
	RecordHeartbeat(ctx context.Context, in store.HeartbeatInput) error
	Ingest(ctx context.Context, b store.IngestBatch) (store.IngestResult, error)
}

// ConnectorConfig configures the connector API; every field is required.
type ConnectorConfig struct {
	Store   ConnectorStore
	Limiter RateLimiter
	Now     func() time.Time
	// HeartbeatInterval is how often connectors are asked to report.
	HeartbeatInterval time.Duration
}

// ConnectorRate bounds one token's requests: a connector sends a batch every
// few seconds at most while importing, so this only stops a runaway or a
// stolen token.
var ConnectorRate = ratelimit.Rate{Events: 1200, Per: time.Minute, Burst: 200}

// RegisterConnector adds the /api/connector/v1 routes.
func (s *Server) RegisterConnector(cfg ConnectorConfig) error {
	if cfg.Store == nil || cfg.Limiter == nil || cfg.Now == nil || cfg.HeartbeatInterval <= 0 {
		return errors.New("httpapi: connector routes need Store, Limiter, Now and HeartbeatInterval")
	}
	r := &connectorRoutes{cfg: cfg}
	g := s.echo.Group("/api/connector/v1",
		middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: strconv.Itoa(protocol.MaxBatchBytes) + "B"}),
		r.authenticate)
	g.POST("/pair", r.pair)
	g.POST("/heartbeat", r.heartbeat)
	g.POST("/batches", r.batches)
	return nil
}

type connectorRoutes struct {
	cfg ConnectorConfig
}

type connectorCaller struct {
	db  store.ClinicDatabase
	acc store.Account
}

func callerOf(c echo.Context) connectorCaller {
	cc, _ := c.Get("connector").(connectorCaller)
	return cc
}

// authenticate resolves the bearer token to its database (see the file comment).
func (r *connectorRoutes) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		raw, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
		token, err := conntoken.Parse(raw)
		if !ok || err != nil {
			return apperr.New(apperr.Unauthorized, "Нет токена подключения или он повреждён. Скопируйте токен из amoCRM («Получить токен») целиком.")
		}
		hash := conntoken.Hash(token)
		d, acc, err := r.cfg.Store.ConnectorDatabase(ctx, hash)
		switch {
		case errors.Is(err, store.ErrTokenRevoked):
			return apperr.New(apperr.Unauthorized, "Токен отозван: для этой базы в amoCRM выдан новый токен. Вставьте новый токен в коннектор.")
		case errors.Is(err, store.ErrNotFound):
			return apperr.New(apperr.Unauthorized, "Токен не найден. Проверьте, что он скопирован целиком, или получите новый в amoCRM («Получить токен»).")
		case err != nil:
			return err
		case acc.Status != store.AccountActive:
			return apperr.New(apperr.Unauthorized, "Виджет «Связка» отключён в amoCRM. Установите его заново и получите новый токен.")
		}
		allowed, retry, err := r.cfg.Limiter.Allow(ctx, "connector:"+strconv.FormatInt(d.ID, 10), ConnectorRate)
		if err != nil {
			return apperr.Wrap(err, apperr.Unavailable, "Сервис временно недоступен, коннектор повторит попытку.")
		}
		if !allowed {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
			return apperr.New(apperr.RateLimited, "Слишком много запросов от коннектора, он повторит попытку позже.")
		}
		c.Set("connector", connectorCaller{db: d, acc: acc})
		return next(c)
	}
}

func checkInstance(id string) error {
	if u, err := uuid.Parse(id); err != nil || u.String() != id {
		return apperr.New(apperr.Invalid, "instance_id должен быть UUID.")
	}
	return nil
}

func checkShortText(field, v string, max int) error {
	if utf8.RuneCountInString(v) > max || !plainText(v) {
		return apperr.New(apperr.Invalid, "Поле «%s»: до %d символов, без служебных знаков.", field, max)
	}
	return nil
}

func (r *connectorRoutes) pair(c echo.Context) error {
	var req protocol.Pair
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if err := errors.Join(checkInstance(req.InstanceID), checkShortText("hostname", req.Hostname, 255),
		checkShortText("connector_version", req.ConnectorVersion, 64)); err != nil {
		return firstAppErr(err)
	}
	cc := callerOf(c)
	d, err := r.cfg.Store.PairConnector(c.Request().Context(), store.PairInput{DatabaseID: cc.db.ID, InstanceID: req.InstanceID,
		Hostname: req.Hostname, ConnectorVersion: req.ConnectorVersion, Now: r.cfg.Now().UTC()})
	if errors.Is(err, store.ErrPairedElsewhere) {
		host := cc.db.InstanceHostname
		if host == "" {
			host = "другой сервер"
		}
		return apperr.New(apperr.Conflict, "Этот токен уже используется коннектором на сервере «%s». Чтобы подключить этот сервер, получите новый токен в amoCRM.", host)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, protocol.PairResult{AccountName: cc.acc.Name, DatabaseName: d.Name, TimeZone: d.TimeZone})
}

func (r *connectorRoutes) heartbeat(c echo.Context) error {
	var req protocol.Heartbeat
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.Database != protocol.DatabaseConnected && req.Database != protocol.DatabaseDisconnected {
		return apperr.New(apperr.Invalid, "Поле «database»: connected или disconnected.")
	}
	if req.Pending < 0 {
		return apperr.New(apperr.Invalid, "Поле «pending» не может быть отрицательным.")
	}
	if err := errors.Join(checkInstance(req.InstanceID), checkShortText("connector_version", req.ConnectorVersion, 64),
		checkShortText("hostname", req.Hostname, 255), checkShortText("detail", req.Detail, 300), checkShortText("source_version", req.SourceVersion, 200)); err != nil {
		return firstAppErr(err)
	}
	cc := callerOf(c)
	err := r.cfg.Store.RecordHeartbeat(c.Request().Context(), store.HeartbeatInput{DatabaseID: cc.db.ID, InstanceID: req.InstanceID,
		ConnectorVersion: req.ConnectorVersion, Hostname: req.Hostname, DatabaseUp: req.Database == protocol.DatabaseConnected, Detail: req.Detail,
		SourceVersion: req.SourceVersion, Pending: req.Pending, InitialLoadDone: req.InitialLoadDone, Now: r.cfg.Now().UTC()})
	if errors.Is(err, store.ErrPairedElsewhere) {
		return apperr.New(apperr.Conflict, "Этот токен подключён к коннектору на другом сервере. Получите новый токен в amoCRM.")
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, protocol.HeartbeatResult{IntervalSeconds: int(r.cfg.HeartbeatInterval / time.Second)})
}

func (r *connectorRoutes) batches(c echo.Context) error {
	var req protocol.Batch
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	checked, err := ingest.Check(req)
	if err != nil {
		return apperr.Wrap(err, apperr.Invalid, "Неверный пакет: %s.", strings.TrimPrefix(err.Error(), ingest.ErrBatch.Error()+": "))
	}
	cc := callerOf(c)
	in := store.IngestBatch{DatabaseID: cc.db.ID, BatchID: checked.BatchID, Total: checked.Total, Now: r.cfg.Now().UTC(),
		Records: make([]store.IngestRecord, len(checked.Records)), Wake: jobs.SyncWake(cc.db.AccountID)}
	for i, rec := range checked.Records {
		in.Records[i] = store.IngestRecord{Kind: string(rec.Kind), SourceID: rec.SourceID, Version: rec.Version,
			Deleted: rec.Deleted, Data: rec.Data, Hash: rec.Hash}
	}
	if len(checked.Errors) > 0 {
		raw, err := jsonMarshal(checked.Errors)
		if err != nil {
			return err
		}
		in.Errors = raw
	}
	res, err := r.cfg.Store.Ingest(c.Request().Context(), in)
	if err != nil {
		return err
	}
	out := protocol.BatchResult{BatchID: checked.BatchID, Accepted: res.Accepted, Duplicate: res.Duplicate, Errors: []protocol.RecordError{}}
	if err := jsonUnmarshal(res.Errors, &out.Errors); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// firstAppErr returns the first application error of a joined error.
func firstAppErr(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if e != nil {
				return e
			}
		}
	}
	return err
}
