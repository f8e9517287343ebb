// Settings page of the Svyazka widget, shown in an iframe inside amoCRM.
// Talks only to our API with the session token from the page's meta tag.
(function () {
  'use strict';

  var session = document.querySelector('meta[name="svyazka-session"]').content;
  var state = null;
  var events = { page: 1, perPage: 25, sort: 'desc', total: 0 };
  var tz = 'Europe/Moscow';

  function $(id) { return document.getElementById(id); }

  function api(method, path, body) {
    var opts = { method: method, headers: { 'Authorization': 'Bearer ' + session } };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    return fetch('/api/app/v1' + path, opts).then(function (resp) {
      if (resp.status === 401) {
        poll.stopped = true; // the session ended: polling cannot succeed again
        return resp.json().then(function (b) { showNotice(b.error.message, true); throw new Error(b.error.message); });
      }
      return resp;
    });
  }

  function json(resp) {
    return resp.json().then(function (b) {
      if (!resp.ok) { throw new Error(b.error ? b.error.message : 'Ошибка ' + resp.status); }
      return b;
    });
  }

  function showNotice(text, isError) {
    var n = $('notice');
    n.textContent = text;
    n.className = 'notice' + (isError ? ' error' : '');
    n.hidden = !text;
  }

  function fmtDate(iso, withTime) {
    if (!iso) { return '—'; }
    var opts = { timeZone: tz, day: '2-digit', month: '2-digit', year: 'numeric' };
    if (withTime) { opts.hour = '2-digit'; opts.minute = '2-digit'; opts.second = '2-digit'; }
    return new Date(iso).toLocaleString('ru-RU', opts);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  // Tabs ------------------------------------------------------------------
  function openTab(name) {
    document.querySelectorAll('.tab').forEach(function (t) {
      t.classList.toggle('active', t.dataset.tab === name);
    });
    document.querySelectorAll('.panel').forEach(function (p) {
      p.hidden = p.id !== 'panel-' + name;
    });
    if (name === 'events') { loadEvents(); }
  }
  document.querySelectorAll('.tab').forEach(function (t) {
    t.addEventListener('click', function () { openTab(t.dataset.tab); });
  });

  // State -----------------------------------------------------------------
  // The state is polled every POLL_MS while the page is visible, so a
  // connector's first heartbeat shows without a reload; a hidden page (another
  // amoCRM tab, a minimised window) polls nothing and catches up when shown.
  var POLL_MS = 5000;
  var poll = { timer: null, seq: 0, applied: 0, failed: false, stopped: false, checkedAt: null };

  // loadState fetches the state and renders it; a response older than one
  // already shown is dropped (a poll may cross a «Проверить сейчас»).
  function loadState() {
    var seq = ++poll.seq;
    return api('GET', '/state').then(json).then(function (s) {
      if (seq < poll.applied) { return; }
      poll.applied = seq;
      state = s;
      tz = s.account.timezone || tz;
      poll.checkedAt = new Date();
      if (poll.failed) { poll.failed = false; showNotice('', false); }
      render();
    }).catch(function (e) {
      if (poll.stopped) { return; } // the 401 notice stays
      poll.failed = true;
      showNotice(e instanceof TypeError ? 'Нет связи с сервером «Связки». Статусы обновятся, когда связь восстановится.' : e.message, true);
    });
  }

  function schedulePoll() {
    window.clearTimeout(poll.timer);
    poll.timer = null;
    if (poll.stopped || document.visibilityState !== 'visible') { return; }
    poll.timer = window.setTimeout(function () {
      loadState().then(schedulePoll);
    }, POLL_MS);
  }

  function refreshNow() {
    return loadState().then(schedulePoll);
  }

  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'visible') {
      refreshNow();
    } else {
      window.clearTimeout(poll.timer);
      poll.timer = null;
    }
  });

  function dot(kind) { return el('i', 'dot ' + (kind || '')); }

  function withDot(kind, text) {
    var span = el('span');
    span.appendChild(dot(kind));
    span.appendChild(document.createTextNode(text));
    return span;
  }

  // status is one link as ✅/🔴 and its label; the icons are drawn in CSS
  // (no emoji font needed), the emoji is their accessible name.
  function status(st) {
    var ok = st.state === 'connected';
    var span = el('span', 'status ' + st.state);
    var icon = el('i', 'icon ' + (ok ? 'ok' : 'bad'));
    icon.setAttribute('role', 'img');
    icon.setAttribute('aria-label', ok ? '✅' : '🔴');
    span.appendChild(icon);
    span.appendChild(el('span', 'label', st.label));
    if (st.hint) { span.title = st.hint; }
    return span;
  }

  // Which «Что проверить?» expanders are open, so a poll keeps them open.
  var openHelp = {};

  function statusCell(d, kind) {
    var st = d[kind];
    var td = el('td', kind + '-status');
    td.appendChild(status(st));
    if (st.state === 'connected') { return td; }
    if (st.hint) { td.appendChild(el('div', 'hint', st.hint)); }
    var help = $('check-help').content.firstElementChild.cloneNode(true);
    var key = d.id + ':' + kind;
    help.open = !!openHelp[key];
    help.addEventListener('toggle', function () { openHelp[key] = help.open; });
    td.appendChild(help);
    return td;
  }

  function meta(label, value) {
    var div = el('div', 'meta');
    div.appendChild(el('span', 'muted', label + ': '));
    div.appendChild(el('span', 'value', value));
    return div;
  }

  function databaseRow(d, canIssue, issueTitle) {
    var tr = el('tr');
    tr.dataset.id = d.id;
    var name = el('td', 'db-name');
    name.appendChild(el('div', 'name', d.name));
    name.appendChild(meta('Сервер', d.hostname || '—'));
    var seen = meta('Последняя связь', d.last_seen_at ? fmtDate(d.last_seen_at, true) : 'ещё не было');
    seen.classList.add('last-seen');
    name.appendChild(seen);
    name.appendChild(meta('Часовой пояс базы', d.time_zone || '—'));
    if (d.source_version) {
      var version = meta('Версия базы', d.source_version);
      version.classList.add('clip');
      version.title = d.source_version;
      name.appendChild(version);
    }
    if (d.last_seen_at && !d.initial_load_done) { name.appendChild(el('div', 'meta wait', 'Идёт первая загрузка данных…')); }
    if (d.pending > 0) { name.appendChild(meta('В очереди коннектора', String(d.pending))); }
    tr.appendChild(name);
    tr.appendChild(statusCell(d, 'connector'));
    tr.appendChild(statusCell(d, 'database'));
    var act = el('td');
    var again = el('button', 'btn small', 'Новый токен');
    again.disabled = !canIssue;
    again.title = issueTitle || 'Выдать новый токен; коннектор с прежним токеном отключится';
    again.addEventListener('click', function () { issueToken(d.id, d.name); });
    act.appendChild(again);
    tr.appendChild(act);
    return tr;
  }

  function render() {
    $('account-name').textContent = state.account.subdomain;
    document.querySelectorAll('.tab').forEach(function (t) {
      var alert = t.querySelector('.tab-alert');
      var problem = state.problems[t.dataset.tab];
      alert.hidden = !problem;
      alert.title = problem || '';
      t.title = problem || '';
    });
    $('install-form').hidden = state.account.install_form_done;
    var isAdmin = !!(state.user && state.user.is_admin);
    var issueTitle = !isAdmin ? 'Доступно администратору аккаунта amoCRM'
      : (!state.account.install_form_done ? 'Сначала заполните данные установки' : '');
    var canIssue = isAdmin && state.account.install_form_done;
    $('get-token').disabled = !canIssue;
    $('get-token').title = issueTitle;

    var tbody = $('databases').querySelector('tbody');
    tbody.textContent = '';
    state.databases.forEach(function (d) { tbody.appendChild(databaseRow(d, isAdmin, isAdmin ? '' : issueTitle)); });
    $('databases-empty').hidden = state.databases.length > 0;
    $('databases').hidden = state.databases.length === 0;
    $('checked-at').textContent = poll.checkedAt ? 'Обновлено в ' + poll.checkedAt.toLocaleTimeString('ru-RU', { timeZone: tz }) +
      ' (время указано в часовом поясе аккаунта, ' + tz + ').' : '';

    $('start-sync').disabled = !state.start.enabled;
    var missing = $('start-missing');
    missing.textContent = '';
    (state.start.missing || []).forEach(function (m) {
      var li = el('li');
      li.appendChild(withDot('', m));
      missing.appendChild(li);
    });
    $('start-sync').title = (state.start.missing || []).join('; ');

    var sub = state.subscription;
    var kind = { trial: 'wait', active: 'ok', expiring: 'warn' }[sub.status] || '';
    $('sub-status').textContent = '';
    $('sub-status').appendChild(withDot(kind, sub.label));
    $('sub-dates').textContent = sub.trial_ends_at && sub.status === 'trial' ? 'Пробный период до ' + fmtDate(sub.trial_ends_at)
      : (sub.paid_until ? 'Оплачено до ' + fmtDate(sub.paid_until) : '');
    $('sub-hint').textContent = sub.hint;

    var setupLabels = { not_configured: ['', 'Связка не настроена'], in_progress: ['wait', 'Выполняется настройка'],
      configured: ['ok', 'Связка настроена'], broken: ['', 'Данные не передаются'] };
    var setup = setupLabels[state.setup.state] || ['', state.setup.state];
    $('setup-status').textContent = '';
    $('setup-status').appendChild(withDot(setup[0], setup[1]));
    $('setup-hint').textContent = state.setup.state === 'configured' ? '' :
      (state.setup.detail || 'Автонастройка создаёт воронки «Первичный приём» и «Повторный приём», их этапы и поля карточек. Она доступна, когда подключена база и синхронизация остановлена.');

    fillSelect($('flt-type'), state.event_types);
    fillSelect($('flt-severity'), state.severities);
    fillSelect($('flt-database'), state.databases.map(function (d) { return { value: String(d.id), label: d.name }; }));
  }

  function fillSelect(sel, options) {
    var keep = sel.value;
    while (sel.options.length > 1) { sel.remove(1); }
    options.forEach(function (o) { sel.appendChild(new Option(o.label, o.value)); });
    sel.value = keep;
  }

  // Install form ----------------------------------------------------------
  $('install-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var err = $('install-error');
    err.hidden = true;
    api('POST', '/install-form', { name: $('f-name').value, phone: $('f-phone').value, consent: $('f-consent').checked })
      .then(json).then(function () {
        showNotice('Данные сохранены. Теперь получите токен для коннектора.', false);
        return loadState();
      }).catch(function (e) { err.textContent = e.message; err.hidden = false; });
  });

  // Connector token -------------------------------------------------------
  function issueToken(databaseId, name) {
    if (databaseId && !window.confirm('Выдать новый токен для «' + name + '»? Коннектор с прежним токеном отключится.')) { return; }
    api('POST', '/databases/token', { database_id: databaseId || 0 }).then(json).then(function (r) {
      $('token-db').textContent = r.database.name;
      $('token-value').textContent = r.token;
      $('token-box').hidden = false;
      return loadState();
    }).catch(function (e) { showNotice(e.message, true); });
  }
  $('get-token').addEventListener('click', function () { issueToken(0); });
  $('token-copy').addEventListener('click', function () {
    var text = $('token-value').textContent;
    var done = function () { $('token-copy').textContent = 'Скопировано'; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectToken(); });
    } else {
      selectToken();
    }
  });
  function selectToken() {
    var range = document.createRange();
    range.selectNodeContents($('token-value'));
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    $('token-copy').textContent = 'Нажмите Ctrl+C';
  }
  $('troubleshooting-link').addEventListener('click', function (ev) {
    ev.preventDefault();
    $('troubleshooting').hidden = !$('troubleshooting').hidden;
  });

  // Event log -------------------------------------------------------------
  function eventQuery() {
    var q = new URLSearchParams();
    var add = function (k, v) { if (v) { q.set(k, v); } };
    add('type', $('flt-type').value);
    add('severity', $('flt-severity').value);
    add('database_id', $('flt-database').value);
    add('q', $('flt-text').value.trim());
    add('from', $('flt-from').value);
    add('to', $('flt-to').value);
    q.set('sort', events.sort);
    return q;
  }

  function loadEvents() {
    var q = eventQuery();
    q.set('page', events.page);
    q.set('per_page', events.perPage);
    return api('GET', '/events?' + q.toString()).then(json).then(function (r) {
      events.total = r.total;
      var tbody = $('events').querySelector('tbody');
      tbody.textContent = '';
      r.items.forEach(function (e) {
        var tr = el('tr', 'sev-' + e.severity);
        tr.appendChild(el('td', 'nowrap', fmtDate(e.created_at, true)));
        tr.appendChild(el('td', '', e.type_label));
        tr.appendChild(el('td', '', e.severity_label));
        tr.appendChild(el('td', '', e.database_name || ''));
        tr.appendChild(el('td', '', e.message));
        tbody.appendChild(tr);
      });
      $('events-empty').hidden = r.items.length > 0;
      var pages = Math.max(1, Math.ceil(r.total / events.perPage));
      $('page-info').textContent = 'Стр. ' + events.page + ' из ' + pages + ' · всего ' + r.total;
      $('page-prev').disabled = events.page <= 1;
      $('page-next').disabled = events.page >= pages;
      showNotice('', false);
    }).catch(function (e) { showNotice(e.message, true); });
  }

  ['flt-type', 'flt-severity', 'flt-database', 'flt-from', 'flt-to'].forEach(function (id) {
    $(id).addEventListener('change', function () { events.page = 1; loadEvents(); });
  });
  var typing = null;
  $('flt-text').addEventListener('input', function () {
    window.clearTimeout(typing);
    typing = window.setTimeout(function () { events.page = 1; loadEvents(); }, 300);
  });
  $('sort-date').addEventListener('click', function () {
    events.sort = events.sort === 'desc' ? 'asc' : 'desc';
    this.dataset.sort = events.sort;
    this.textContent = 'Дата ' + (events.sort === 'desc' ? '↓' : '↑');
    events.page = 1;
    loadEvents();
  });
  $('flt-reset').addEventListener('click', function () {
    ['flt-type', 'flt-severity', 'flt-database', 'flt-from', 'flt-to', 'flt-text'].forEach(function (id) { $(id).value = ''; });
    events.page = 1;
    loadEvents();
  });
  $('page-prev').addEventListener('click', function () { events.page--; loadEvents(); });
  $('page-next').addEventListener('click', function () { events.page++; loadEvents(); });
  // The export ends with one final line: complete, cut at the row limit
  // (ВНИМАНИЕ) or interrupted (ОШИБКА); the last two are shown as a notice.
  // A refused export (429: one already running) answers JSON, never CSV.
  $('events-csv').addEventListener('click', function () {
    var btn = this;
    btn.disabled = true;
    api('GET', '/events.csv?' + eventQuery().toString()).then(function (resp) {
      if (!resp.ok) { return json(resp); }
      return resp.blob().then(function (blob) {
        var a = document.createElement('a');
        a.href = URL.createObjectURL(blob);
        a.download = 'svyazka-events.csv';
        document.body.appendChild(a);
        a.click();
        a.remove();
        return blob.slice(Math.max(0, blob.size - 1024)).text();
      }).then(function (tail) {
        var last = tail.trim().split('\n').pop().replace(/^"|"$/g, '');
        if (last.indexOf('ОШИБКА') === 0 || last.indexOf('ВНИМАНИЕ') === 0) {
          showNotice(last, true);
        } else {
          showNotice('', false);
        }
      });
    }).catch(function (e) {
      // A dropped connection rejects with a TypeError in the browser's language.
      showNotice(e instanceof TypeError || !e.message ? 'Выгрузка прервана, файл не сохранён. Повторите выгрузку.' : e.message, true);
    }).then(function () { btn.disabled = false; });
  });

  $('check-now').addEventListener('click', function () {
    var btn = this;
    btn.disabled = true;
    refreshNow().then(function () { btn.disabled = false; });
  });

  refreshNow();
})();
