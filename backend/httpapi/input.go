package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/svyazka/svyazka/backend/apperr"
)

// errBodyTooLarge is the one answer to a body over the limit, whether the
// client announced its length or streamed it chunked.
var errBodyTooLarge = apperr.New(apperr.TooLarge, "Тело запроса слишком большое.")

// bindJSON decodes a JSON body strictly: the content type must be JSON,
// unknown fields, a second value or any trailing data are errors, and every
// error message speaks of the field, never of Go types. A body over the
// limit is 413, however it was sent.
func bindJSON(c echo.Context, v any) error {
	if ct := c.Request().Header.Get(echo.HeaderContentType); !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return apperr.New(apperr.Invalid, "Ожидается JSON (Content-Type: application/json).")
	}
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return nil
	case tooLarge(err):
		return errBodyTooLarge
	default:
		return apperr.New(apperr.Invalid, "Неверный JSON: лишние данные после объекта.")
	}
}

func tooLarge(err error) bool {
	var he *echo.HTTPError
	var mbe *http.MaxBytesError
	return errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge || errors.As(err, &mbe)
}

// jsonError translates a decoding error into a user-safe message.
func jsonError(err error) error {
	var (
		syntax    *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		unmarshal *json.InvalidUnmarshalError
	)
	switch {
	case tooLarge(err):
		return errBodyTooLarge
	case errors.Is(err, io.EOF):
		return apperr.New(apperr.Invalid, "Пустое тело запроса: ожидается JSON-объект.")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apperr.New(apperr.Invalid, "Неверный JSON: данные оборваны.")
	case errors.As(err, &syntax):
		return apperr.New(apperr.Invalid, "Неверный JSON (символ %d).", syntax.Offset)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return apperr.New(apperr.Invalid, "Неверный JSON: ожидается объект.")
		}
		return apperr.New(apperr.Invalid, "Поле «%s»: ожидается %s.", field, jsonKind(typeErr.Type.Kind().String()))
	case errors.As(err, &unmarshal):
		return apperr.Wrap(err, apperr.Internal, "decode target")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return apperr.New(apperr.Invalid, "Неизвестное поле %s.", sanitizeQuoted(name))
	}
	return apperr.New(apperr.Invalid, "Неверный JSON.")
}

func jsonKind(kind string) string {
	switch kind {
	case "bool":
		return "true или false"
	case "string":
		return "строка"
	case "slice", "array":
		return "список"
	case "map", "struct":
		return "объект"
	}
	if strings.HasPrefix(kind, "int") || strings.HasPrefix(kind, "uint") || strings.HasPrefix(kind, "float") {
		return "число"
	}
	return "значение другого типа"
}

// sanitizeQuoted bounds and cleans a name echoed from the request.
func sanitizeQuoted(s string) string {
	s = strings.ToValidUTF8(s, "")
	if utf8.RuneCountInString(s) > 64 {
		s = string([]rune(s)[:64]) + "…\""
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

// plainText reports whether s is valid UTF-8 without control characters
// (a NUL would fail in PostgreSQL; the rest have no business in a name).
func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func jsonUnmarshal(raw []byte, v any) error {
	if len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, v)
}
