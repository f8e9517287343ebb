package pairing

import "html/template"

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="ru">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Связка IDENT &amp; amoCRM — настройка коннектора</title>
<style>
body { font: 15px/1.45 system-ui, "Segoe UI", Arial, sans-serif; color: #1d2733; background: #f4f6f8; margin: 0; }
main { max-width: 560px; margin: 32px auto; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 20px; }
section { background: #fff; border: 1px solid #dde3ea; border-radius: 8px; padding: 18px 20px; margin-bottom: 18px; }
h2 { font-size: 17px; margin: 0 0 12px; }
label { display: block; margin: 10px 0 4px; font-weight: 600; }
input[type=text], input[type=password] { width: 100%; box-sizing: border-box; padding: 8px 10px; border: 1px solid #b8c2cc; border-radius: 6px; font: inherit; }
button { margin-top: 14px; padding: 9px 18px; border: 0; border-radius: 6px; background: #2b6cb0; color: #fff; font: inherit; font-weight: 600; cursor: pointer; }
.ok { color: #1f7a3a; font-weight: 600; }
.err { color: #b42318; font-weight: 600; }
.hint { color: #5b6673; font-size: 13px; }
</style>
</head>
<body>
<main>
<h1>Связка IDENT &amp; amoCRM</h1>

<section>
<h2>1. Подключение к серверу Связки</h2>
{{if .PairOK}}<p class="ok">✅ {{.PairOK}}</p>{{end}}
{{if .PairErr}}<p class="err">🔴 {{.PairErr}}</p>{{end}}
<form method="post" action="/pair">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="token">Токен</label>
<input type="text" id="token" name="token" autocomplete="off" spellcheck="false" placeholder="svz_…">
<p class="hint">В amoCRM: «Настройки» → «Связка IDENT &amp; amoCRM» → «Управление интеграцией» → «Получить токен».</p>
<button type="submit">Подключить</button>
</form>
</section>

{{if or .Paired .DBErr}}
<section>
<h2>2. Подключение к базе данных IDENT</h2>
{{if .DBOK}}<p class="ok">✅ {{.DBOK}}</p>{{else if .DSNSaved}}<p class="hint">Параметры базы данных сохранены ранее.</p>{{end}}
{{if .DBErr}}<p class="err">🔴 {{.DBErr}}</p>{{end}}
<form method="post" action="/check">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="host">Хост</label>
<input type="text" id="host" name="host" value="{{.Host}}">
<label for="port">Порт</label>
<input type="text" id="port" name="port" value="{{.Port}}" inputmode="numeric">
<label for="database">Имя базы данных</label>
<input type="text" id="database" name="database" value="{{.Database}}">
<label for="user">Имя пользователя</label>
<input type="text" id="user" name="user" value="{{.User}}">
<label for="password">Пароль</label>
<input type="password" id="password" name="password" autocomplete="off">
<p class="hint">Пароль выдаёт техподдержка ООО «АЙДЕНТ» (support@ident-it.ru). Он хранится только на этом компьютере и не передаётся на сервер Связки.</p>
<label for="instance">Имя экземпляра SQL Server (необязательно)</label>
<input type="text" id="instance" name="instance" value="{{.Instance}}">
<button type="submit">Проверить</button>
</form>
</section>
{{if .DBOK}}<p class="hint">Настройки сохранены. Служба коннектора применит их после перезапуска («svyazka-connector install» устанавливает и запускает её).</p>{{end}}
{{end}}
</main>
</body>
</html>
`))
