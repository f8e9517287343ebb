package httpapi

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/store"
)

// statusByCode is the one table from application error codes to HTTP statuses.
var statusByCode = map[apperr.Code]int{
	apperr.Invalid:         http.StatusBadRequest,
	apperr.NotFound:        http.StatusNotFound,
	apperr.Conflict:        http.StatusConflict,
	apperr.Unauthorized:    http.StatusUnauthorized,
	apperr.Forbidden:       http.StatusForbidden,
	apperr.PaymentRequired: http.StatusPaymentRequired,
	apperr.TooLarge:        http.StatusRequestEntityTooLarge,
	apperr.RateLimited:     http.StatusTooManyRequests,
	apperr.Unavailable:     http.StatusServiceUnavailable,
	apperr.Internal:        http.StatusInternalServerError,
}

// codeByStatus maps Echo's own errors (unknown route, body too large, …) back
// onto application codes so every error body has the same shape.
var codeByStatus = map[int]apperr.Code{
	http.StatusBadRequest:            apperr.Invalid,
	http.StatusNotFound:              apperr.NotFound,
	http.StatusMethodNotAllowed:      apperr.NotFound,
	http.StatusRequestEntityTooLarge: apperr.TooLarge,
	http.StatusUnsupportedMediaType:  apperr.Invalid,
	http.StatusUnauthorized:          apperr.Unauthorized,
	http.StatusForbidden:             apperr.Forbidden,
	http.StatusTooManyRequests:       apperr.RateLimited,
	http.StatusServiceUnavailable:    apperr.Unavailable,
}

// messageByStatus are the user-facing texts for Echo's own errors.
var messageByStatus = map[int]string{
	http.StatusNotFound:              "Страница или метод не найдены.",
	http.StatusMethodNotAllowed:      "Метод не поддерживается.",
	http.StatusRequestEntityTooLarge: "Тело запроса слишком большое.",
	http.StatusUnsupportedMediaType:  "Неподдерживаемый формат запроса.",
	http.StatusServiceUnavailable:    "Сервис временно недоступен, попробуйте позже.",
}

type errorBody struct {
	Code    apperr.Code `json:"code"`
	Message string      `json:"message"`
}

// handleError renders every error as {"error":{"code","message"}}. Internal
// errors are logged once here, with the request id, and shown generically.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, body := s.classify(err)
	if status >= 500 {
		// Without the values a database error may quote (user input).
		s.log.ErrorContext(c.Request().Context(), "request failed", append([]any{
			"request_id", c.Response().Header().Get(echo.HeaderXRequestID),
			"method", c.Request().Method, "route", c.Path()}, store.SafeErrorAttrs(err)...)...)
	}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(status)
	} else {
		err = c.JSON(status, map[string]errorBody{"error": body})
	}
	if err != nil {
		s.log.WarnContext(c.Request().Context(), "write error response", "err", err)
	}
}

func (s *Server) classify(err error) (int, errorBody) {
	var he *echo.HTTPError
	if errors.As(err, &he) && apperr.CodeOf(err) == apperr.Internal {
		code, ok := codeByStatus[he.Code]
		if !ok {
			code = apperr.Internal
		}
		msg := messageByStatus[he.Code]
		if msg == "" {
			if m, isString := he.Message.(string); isString && code != apperr.Internal {
				msg = m
			} else {
				msg = apperr.MessageOf(err)
			}
		}
		return he.Code, errorBody{Code: code, Message: msg}
	}
	if errors.Is(err, echo.ErrNotFound) {
		return http.StatusNotFound, errorBody{Code: apperr.NotFound, Message: messageByStatus[http.StatusNotFound]}
	}
	code := apperr.CodeOf(err)
	return statusByCode[code], errorBody{Code: code, Message: apperr.MessageOf(err)}
}
