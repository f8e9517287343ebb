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
    if (name === 'settings') { loadSetup(); }
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

    renderSync();

    var sub = state.subscription;
    var kind = { trial: 'wait', active: 'ok', expiring: 'warn' }[sub.status] || '';
    $('sub-status').textContent = '';
    $('sub-status').appendChild(withDot(kind, sub.label));
    $('sub-dates').textContent = sub.trial_ends_at && sub.status === 'trial' ? 'Пробный период до ' + fmtDate(sub.trial_ends_at)
      : (sub.paid_until ? 'Оплачено до ' + fmtDate(sub.paid_until) : '');
    $('sub-hint').textContent = sub.hint;

    setSetupStatus(state.setup.state, state.setup.detail);
    renderInbound();

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

  // Sync: ЗАПУСТИТЬ / ОСТАНОВИТЬ ------------------------------------------
  // One button: ЗАПУСТИТЬ while the sync is stopped (or paused by amoCRM),
  // enabled only when the backend's start rule allows it (state.start), with
  // every missing condition listed under it; it opens the start dialog
  // (history date, databases). While the sync runs it is ОСТАНОВИТЬ with the
  // last start time, and asks to confirm. The progress block comes from
  // state.sync and refreshes with the 5-second state poll; the dialog is
  // filled only when opened, so a poll never resets what the user chose.
  var SYNC_STATES = { running: 'Передача данных запущена', stopped: 'Передача данных остановлена',
    paused: 'Передача данных приостановлена: amoCRM заблокировал доступ к API. Изменения копятся; запустите передачу, когда доступ восстановится' };
  var syncUI = { busy: false };

  function syncRunning() { return !!(state && state.sync && state.sync.state === 'running'); }

  function plural(n, one, few, many) {
    var m10 = n % 10, m100 = n % 100;
    if (m10 === 1 && m100 !== 11) { return one; }
    if (m10 >= 2 && m10 <= 4 && (m100 < 12 || m100 > 14)) { return few; }
    return many;
  }

  function fmtNumber(n) { return Number(n).toLocaleString('ru-RU'); }

  function fmtDuration(sec) {
    sec = Math.max(0, Math.round(sec));
    if (sec < 60) { return sec + ' с'; }
    var min = Math.round(sec / 60);
    if (min < 60) { return min + ' мин'; }
    var h = Math.floor(min / 60), rest = min % 60;
    if (h < 48) { return h + ' ч' + (rest ? ' ' + rest + ' мин' : ''); }
    return Math.round(h / 24) + ' дн.';
  }

  // localDay is the date (YYYY-MM-DD) in the account's zone daysAgo days before now.
  function localDay(daysAgo) {
    var d = new Date(Date.now() - daysAgo * 86400000);
    var parts = {};
    new Intl.DateTimeFormat('en-GB', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts(d)
      .forEach(function (p) { parts[p.type] = p.value; });
    return parts.year + '-' + parts.month + '-' + parts.day;
  }

  function dbConnected(d) { return d.connector.state === 'connected' && d.database.state === 'connected'; }

  function renderSync() {
    var sync = state.sync || { state: 'stopped', import: {}, queue: {}, databases: [] };
    var running = sync.state === 'running';
    var admin = isAdminUser();
    var btn = $('start-sync');
    btn.dataset.action = running ? 'stop' : 'start';
    btn.textContent = running ? 'ОСТАНОВИТЬ' : 'ЗАПУСТИТЬ';
    btn.classList.toggle('stop', running);
    var reasons = [];
    if (!admin) {
      reasons = [ADMIN_ONLY];
    } else if (!running) {
      reasons = state.start.enabled ? [] : (state.start.missing || []);
    }
    btn.disabled = reasons.length > 0 || syncUI.busy;
    btn.title = reasons.join('; ');
    var missing = $('start-missing');
    missing.textContent = '';
    reasons.forEach(function (m) {
      var li = el('li');
      li.appendChild(withDot('', m));
      missing.appendChild(li);
    });
    // A poll that finds the state changed closes what no longer applies.
    if (!running || !admin) { $('sync-stop-confirm').hidden = true; }
    if (running || !admin || !state.start.enabled) { $('sync-dialog').hidden = true; }

    $('sync-last-start').textContent = sync.started_at ? 'Последний запуск: ' + fmtDate(sync.started_at, true) : '';
    var box = $('sync-state');
    box.textContent = '';
    if (sync.started_at || sync.state !== 'stopped') {
      box.appendChild(withDot({ running: 'ok', paused: '' }[sync.state] || 'warn', SYNC_STATES[sync.state] || sync.state));
    }

    $('sync-progress').hidden = !sync.started_at;
    if (!sync.started_at) { return; }
    var imp = sync.import || {};
    var total = imp.total || 0, done = Math.min(imp.done || 0, total);
    var bar = $('sync-bar');
    bar.max = Math.max(1, total);
    bar.value = total ? done : 1;
    var since = sync.since ? ' с ' + sync.since.split('-').reverse().join('.') : '';
    var count = $('sync-count');
    if (total === 0) {
      count.textContent = 'Нет записей для загрузки' + (since ? ' (история' + since + ')' : '');
    } else if (done >= total) {
      count.textContent = 'Загружено ' + fmtNumber(done) + ' из ' + fmtNumber(total) + ' — загрузка истории' + since + ' завершена';
    } else {
      count.textContent = 'Загружено ' + fmtNumber(done) + ' из ' + fmtNumber(total) + ' (' + Math.floor(done * 100 / total) + '%)' +
        (since ? ', история' + since : '');
    }
    count.dataset.done = String(done);
    count.dataset.total = String(total);
    var rate = imp.rate_per_minute || 0;
    $('sync-rate').textContent = running && rate > 0 ? fmtNumber(Math.round(rate)) + ' ' + plural(Math.round(rate), 'запись', 'записи', 'записей') + '/мин' : '—';
    $('sync-eta').textContent = done >= total ? 'готово' : (running && imp.eta_seconds != null ? '≈ ' + fmtDuration(imp.eta_seconds) : '—');
    $('sync-lag').textContent = sync.lag_seconds > 0 ? fmtDuration(sync.lag_seconds) : 'нет';
    var q = sync.queue || {};
    $('sync-queue').textContent = fmtNumber(q.pending || 0) + (q.parked ? ', отложено ' + fmtNumber(q.parked) : '');
    $('sync-queue').title = q.parked ? 'Отложенные записи amoCRM не принял; они в «Списке событий» с кнопкой «Отправить повторно»' : '';

    var names = {};
    state.databases.forEach(function (d) { names[d.id] = d.name; });
    var tbody = $('sync-databases').querySelector('tbody');
    tbody.textContent = '';
    (sync.databases || []).forEach(function (d) {
      var tr = el('tr', d.enabled ? '' : 'sync-db-off');
      tr.dataset.id = d.id;
      tr.appendChild(el('td', 'db', (names[d.id] || 'База') + (d.enabled ? '' : ' (не передаётся)')));
      tr.appendChild(el('td', 'received' + (d.last_received_at ? '' : ' never'), d.last_received_at ? fmtDate(d.last_received_at, true) : 'ещё не было'));
      tr.appendChild(el('td', 'written' + (d.last_written_at ? '' : ' never'), d.last_written_at ? fmtDate(d.last_written_at, true) : 'ещё не было'));
      tbody.appendChild(tr);
    });
  }

  function openSyncDialog() {
    var since = $('sync-since');
    since.max = localDay(0);
    since.value = localDay(365);
    var list = $('sync-dbs');
    list.textContent = '';
    state.databases.forEach(function (d) {
      var label = el('label', 'check');
      var c = el('input', 'sync-db');
      c.type = 'checkbox';
      c.value = String(d.id);
      c.checked = dbConnected(d);
      c.disabled = !dbConnected(d);
      label.appendChild(c);
      label.appendChild(document.createTextNode(d.name + (dbConnected(d) ? '' : ' — нет подключения')));
      list.appendChild(label);
    });
    showError('sync-dialog-error', '');
    $('sync-dialog').hidden = false;
    since.focus();
  }

  $('start-sync').addEventListener('click', function () {
    showError('sync-error', '');
    if (this.dataset.action === 'stop') {
      $('sync-stop-confirm').hidden = false;
      return;
    }
    openSyncDialog();
  });
  $('sync-cancel').addEventListener('click', function () { $('sync-dialog').hidden = true; });
  $('sync-dialog').addEventListener('click', function (ev) { if (ev.target === this) { this.hidden = true; } });
  document.addEventListener('keydown', function (ev) { if (ev.key === 'Escape') { $('sync-dialog').hidden = true; } });
  $('sync-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var since = $('sync-since').value;
    var ids = [];
    document.querySelectorAll('#sync-dbs input.sync-db').forEach(function (c) { if (c.checked) { ids.push(Number(c.value)); } });
    if (!/^\d{4}-\d{2}-\d{2}$/.test(since)) { showError('sync-dialog-error', 'Укажите дату, с которой загрузить историю.'); return; }
    if (since > localDay(0)) { showError('sync-dialog-error', 'Дата не может быть в будущем.'); return; }
    if (ids.length === 0) { showError('sync-dialog-error', 'Выберите хотя бы одну подключённую базу.'); return; }
    var go = $('sync-go');
    go.disabled = true;
    showError('sync-dialog-error', '');
    api('POST', '/sync/start', { since: since, database_ids: ids }).then(json).then(function () {
      $('sync-dialog').hidden = true;
      showNotice('Передача данных запущена. Загрузка истории идёт в фоне — страницу можно закрыть.', false);
      return refreshNow();
    }).catch(function (e) {
      showError('sync-dialog-error', e instanceof TypeError ? 'Нет связи с сервером «Связки». Повторите попытку.' : e.message);
    }).then(function () { go.disabled = false; });
  });
  $('sync-stop-cancel').addEventListener('click', function () { $('sync-stop-confirm').hidden = true; });
  $('sync-stop-go').addEventListener('click', function () {
    var btn = this;
    btn.disabled = true;
    syncUI.busy = true;
    api('POST', '/sync/stop').then(json).then(function () {
      $('sync-stop-confirm').hidden = true;
      showNotice('Передача данных остановлена. Изменения копятся и передадутся после запуска.', false);
    }).catch(function (e) {
      showError('sync-error', e instanceof TypeError ? 'Нет связи с сервером «Связки». Повторите попытку.' : e.message);
    }).then(function () {
      btn.disabled = false;
      syncUI.busy = false;
      return refreshNow();
    });
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

  // Settings («Настройки») ------------------------------------------------
  // The tab shows the setup status, runs autosetup (a confirm panel with the
  // blocks and the proposal, then a run polled every second) and offers
  // flexible setup: every choice is saved at once with PUT /setup/mapping and
  // answered inline («Сохранено» or the server's message). The 5-second state
  // poll only refreshes the status line and the autosetup button, so it never
  // rebuilds a select the user is working with.
  var SETUP_LABELS = { not_configured: 'Связка не настроена', running: 'Выполняется автонастройка',
    configured: 'Связка настроена', failed: 'Автонастройка не удалась', drift: 'Данные не передаются' };
  var ADMIN_ONLY = 'Доступно администратору аккаунта amoCRM';
  var setupUI = { data: null, status: '', detail: '', seq: 0, runID: '', renames: {}, saved: {}, pendingFixed: false };

  function isAdminUser() { return !!(state && state.user && state.user.is_admin); }

  function setSetupStatus(st, detail) {
    setupUI.status = st;
    setupUI.detail = detail || '';
    var box = $('setup-status');
    box.textContent = '';
    box.className = 'sub-status setup-' + st;
    var text = SETUP_LABELS[st] || st;
    if ((st === 'failed' || st === 'drift') && detail) { text += ': ' + detail; }
    if (st === 'configured' || st === 'failed' || st === 'drift') {
      var ok = st === 'configured';
      var span = el('span', 'status');
      var icon = el('i', 'icon ' + (ok ? 'ok' : 'bad'));
      icon.setAttribute('role', 'img');
      icon.setAttribute('aria-label', ok ? '✅' : '🔴');
      span.appendChild(icon);
      span.appendChild(el('span', 'label', text));
      box.appendChild(span);
    } else {
      box.appendChild(withDot(st === 'running' ? 'wait' : '', text));
    }
    $('setup-hint').textContent = {
      not_configured: 'Автонастройка создаёт воронки «Первичный приём» и «Повторный приём», их этапы и поля карточек; похожие элементы, которые уже есть в amoCRM, используются. Настроить всё вручную можно ниже.',
      running: 'Автонастройка выполняется. Не обновляйте страницу.',
      configured: 'Можно запускать передачу данных на вкладке «Управление интеграцией» или поправить настройку вручную ниже.',
      failed: 'Исправьте причину и выполните автонастройку ещё раз — уже созданное не будет создано повторно.',
      drift: 'Выберите в гибкой настройке другой элемент amoCRM или выполните автонастройку ещё раз. Данные придержаны и будут переданы после исправления.'
    }[st] || '';
    renderSetupButton();
  }

  // setupBlocked is why autosetup cannot start now, or ''.
  function setupBlocked() {
    if (!state) { return 'Загрузка…'; }
    if (!isAdminUser()) { return ADMIN_ONLY; }
    var sync = state.setup.sync_state;
    if (sync && sync !== 'stopped') { return 'Остановите синхронизацию, чтобы выполнить автонастройку'; }
    if (setupUI.runID || setupUI.status === 'running') { return 'Автонастройка уже выполняется'; }
    return '';
  }

  function renderSetupButton() {
    var reason = setupBlocked();
    var btn = $('setup-auto');
    btn.disabled = !!reason;
    btn.title = reason;
    $('setup-auto-reason').textContent = reason;
    $('setup-auto-reason').hidden = !reason || !state;
  }

  function showError(id, text) {
    $(id).textContent = text || '';
    $(id).hidden = !text;
  }

  // loadSetup fetches GET /setup and renders flexible setup; an older
  // answer than one already shown is dropped.
  function loadSetup() {
    var seq = ++setupUI.seq;
    return api('GET', '/setup').then(json).then(function (d) {
      if (seq !== setupUI.seq) { return setupUI.data; }
      setupUI.data = d;
      setSetupStatus(d.status, d.detail);
      renderFlex();
      if (d.run && d.run.state === 'running' && !setupUI.runID) { trackRun(d.run.id); }
      return d;
    }).catch(function (e) {
      if (seq === setupUI.seq) { showError('setup-options-error', e.message); $('setup-loading').hidden = true; }
      return null;
    });
  }

  function proposalItem(key) {
    var d = setupUI.data;
    var items = d && d.proposal ? d.proposal.items : [];
    for (var i = 0; i < items.length; i++) { if (items[i].key === key) { return items[i]; } }
    return null;
  }

  function planPipeline(pk) {
    var list = setupUI.data ? setupUI.data.plan.pipelines : [];
    for (var i = 0; i < list.length; i++) { if (list[i].key === pk) { return list[i]; } }
    return null;
  }

  // itemName is the name an item of the plan has or is created under.
  function itemName(key) {
    if (setupUI.renames[key]) { return setupUI.renames[key]; }
    var it = proposalItem(key);
    return it ? it.name : key;
  }

  // itemTitle names an item for progress and errors: «Поле «Врач» (сделка)».
  function itemTitle(key) {
    if (!key) { return ''; }
    var p = key.split(':');
    switch (p[0]) {
      case 'pipeline': return 'Воронка «' + itemName(key) + '»';
      case 'stage': return 'Этап «' + itemName(key) + '» воронки «' + itemName('pipeline:' + p[1]) + '»';
      case 'field': return 'Поле «' + itemName(key) + '» (' + (p[1] === 'contact' ? 'контакт' : 'сделка') + ')';
      case 'exceptions': return 'Исключения воронки «' + (planPipeline(p[1]) || { name: p[1] }).name + '»';
      case 'responsible': return 'Ответственный';
    }
    return key;
  }

  // Autosetup: the confirm panel ------------------------------------------
  $('setup-auto').addEventListener('click', function () {
    showError('setup-error', '');
    showError('setup-confirm-error', '');
    var btn = this;
    btn.disabled = true;
    loadSetup().then(function (d) {
      renderSetupButton();
      if (!d) { return; }
      buildConfirm(d);
      $('setup-confirm').hidden = false;
    });
  });
  $('setup-confirm-cancel').addEventListener('click', function () { $('setup-confirm').hidden = true; });

  var KIND_LABELS = { pipeline: 'Воронка', stage: 'Этап', field: 'Поле' };

  function proposalRow(it) {
    var row = el('div', 'prop-item ' + it.decision);
    row.dataset.key = it.key;
    var what = el('div', 'prop-what');
    var title = KIND_LABELS[it.kind] + ' «' + it.label + '»';
    if (it.kind === 'stage') { title += ' · ' + (planPipeline(it.key.split(':')[1]) || { name: '' }).name; }
    what.appendChild(el('span', '', title));
    if (it.required) { what.appendChild(el('span', 'req', ' *')); }
    if (it.type_label) { what.appendChild(el('div', 'muted small', 'Тип поля: ' + it.type_label)); }
    row.appendChild(what);
    var dec = el('div', 'prop-decision');
    if (it.decision === 'reuse') {
      dec.appendChild(el('span', 'muted', 'будет использовано: '));
      dec.appendChild(el('b', 'prop-name', it.name));
    } else if (it.decision === 'create') {
      dec.appendChild(el('span', 'muted', 'будет создано: '));
      if (it.renamable) {
        var input = el('input', 'rename');
        input.type = 'text';
        input.maxLength = 255;
        input.value = it.name;
        input.dataset.key = it.key;
        input.dataset.original = it.name;
        input.setAttribute('aria-label', 'Название: ' + it.label);
        dec.appendChild(input);
      } else {
        dec.appendChild(el('b', 'prop-name', it.name));
      }
    } else {
      dec.appendChild(el('span', 'muted', 'не передаётся'));
    }
    if (it.note) { dec.appendChild(el('div', 'muted small', it.note)); }
    row.appendChild(dec);
    return row;
  }

  function buildConfirm(d) {
    var blocks = $('setup-blocks');
    var list = $('setup-proposal');
    blocks.textContent = '';
    list.textContent = '';
    if (!d.proposal) {
      var why = d.proposal_error ? (d.proposal_error.item ? itemTitle(d.proposal_error.item) + ': ' : '') + d.proposal_error.message
        : (d.options_error || 'Не удалось прочитать настройки amoCRM.');
      showError('setup-confirm-error', why);
    }
    (d.blocks || []).forEach(function (b) {
      var label = el('label', 'check');
      var box = el('input', 'setup-block');
      box.type = 'checkbox';
      box.value = b.key;
      box.checked = true;
      label.appendChild(box);
      label.appendChild(document.createTextNode(b.label));
      blocks.appendChild(label);
      var group = el('div', 'prop-group');
      group.dataset.block = b.key;
      group.appendChild(el('h4', '', b.label));
      var items = d.proposal ? d.proposal.items.filter(function (it) { return it.block === b.key; }) : [];
      items.forEach(function (it) { group.appendChild(proposalRow(it)); });
      if (items.length === 0) { group.appendChild(el('p', 'muted small', 'Нет данных о том, что будет сделано.')); }
      list.appendChild(group);
      box.addEventListener('change', function () {
        group.classList.toggle('off', !box.checked);
        group.querySelectorAll('input').forEach(function (i) { i.disabled = !box.checked; });
      });
    });
  }

  $('setup-confirm-go').addEventListener('click', function () {
    showError('setup-confirm-error', '');
    var blocks = [];
    document.querySelectorAll('#setup-blocks input.setup-block').forEach(function (b) { if (b.checked) { blocks.push(b.value); } });
    if (blocks.length === 0) { showError('setup-confirm-error', 'Выберите хотя бы один блок.'); return; }
    var renames = {};
    var bad = '';
    document.querySelectorAll('#setup-proposal input.rename').forEach(function (i) {
      if (i.disabled) { return; }
      var name = i.value.trim();
      if (!name) { bad = 'Укажите название: ' + i.dataset.original; return; }
      if (name !== i.dataset.original) { renames[i.dataset.key] = name; }
    });
    if (bad) { showError('setup-confirm-error', bad); return; }
    var btn = this;
    btn.disabled = true;
    api('POST', '/setup/runs', { blocks: blocks, renames: renames }).then(json).then(function (r) {
      setupUI.renames = renames;
      $('setup-confirm').hidden = true;
      trackRun(r.run_id);
    }).catch(function (e) {
      showError('setup-confirm-error', e.message);
    }).then(function () { btn.disabled = false; });
  });

  // Autosetup: progress ----------------------------------------------------
  function trackRun(id) {
    setupUI.runID = id;
    $('setup-progress').hidden = false;
    $('setup-progress-text').textContent = 'Автонастройка запущена…';
    $('setup-progress-item').textContent = '';
    setSetupStatus('running', '');
    renderFlex();
    var tick = function () {
      if (setupUI.runID !== id) { return; }
      api('GET', '/setup/runs/' + encodeURIComponent(id)).then(json).then(function (run) {
        var bar = $('setup-progress-bar');
        bar.max = Math.max(1, run.total);
        bar.value = run.done;
        $('setup-progress-text').textContent = 'Выполнено ' + run.done + ' из ' + run.total;
        $('setup-progress-item').textContent = run.item ? 'Сейчас: ' + itemTitle(run.item) : '';
        if (run.state === 'running') { window.setTimeout(tick, 1000); return; }
        finishRun(run);
      }).catch(function (e) {
        if (poll.stopped) { return; }
        $('setup-progress-item').textContent = e instanceof TypeError ? 'Нет связи с сервером, повторяем…' : e.message;
        window.setTimeout(tick, 2000);
      });
    };
    tick();
  }

  function finishRun(run) {
    setupUI.runID = '';
    $('setup-progress').hidden = true;
    if (run.state === 'failed') {
      showError('setup-error', 'Автонастройка не удалась' + (run.error_item ? ' на элементе ' + itemTitle(run.error_item) : '') +
        ': ' + (run.error || 'неизвестная ошибка'));
    } else {
      showError('setup-error', '');
    }
    setupUI.renames = {};
    setupUI.saved = {};
    loadSetup();
    loadState();
  }

  // Flexible setup ---------------------------------------------------------
  function flexDisabled() {
    if (!isAdminUser()) { return ADMIN_ONLY; }
    if (setupUI.runID || setupUI.status === 'running') { return 'Дождитесь окончания автонастройки'; }
    return '';
  }

  function saveStatus(item) {
    var span = el('span', 'save-status');
    span.dataset.for = item;
    var s = setupUI.saved[item];
    if (s) {
      span.textContent = s.text;
      span.classList.add(s.ok ? 'ok' : (s.wait ? 'wait' : 'error'));
    }
    return span;
  }

  function problemsOf(item) {
    var ps = (setupUI.data && setupUI.data.problems) || [];
    return ps.filter(function (p) { return p.item === item; });
  }

  function problemNotes(item, into) {
    problemsOf(item).forEach(function (p) {
      var div = el('div', 'map-problem');
      div.appendChild(dot(''));
      div.appendChild(document.createTextNode(p.message));
      into.appendChild(div);
    });
  }

  function select(item, options, value, placeholder) {
    var sel = el('select', 'map-select');
    sel.dataset.item = item;
    if (placeholder) {
      var ph = new Option(placeholder.label, '');
      ph.disabled = !!placeholder.disabled;
      sel.appendChild(ph);
    }
    options.forEach(function (o) {
      var opt = new Option(o.label, String(o.value));
      if (o.disabled) { opt.disabled = true; }
      sel.appendChild(opt);
    });
    sel.value = value ? String(value) : '';
    var reason = flexDisabled();
    sel.disabled = !!reason;
    sel.title = reason;
    return sel;
  }

  function saveItem(item, value) {
    setupUI.saved = {};
    setupUI.saved[item] = { wait: true, text: 'Сохраняется…' };
    var ss = document.querySelector('.save-status[data-for="' + item + '"]');
    if (ss) { ss.textContent = 'Сохраняется…'; ss.className = 'save-status wait'; }
    return api('PUT', '/setup/mapping', { item: item, value: value }).then(json).then(function (r) {
      if (item === 'responsible') { setupUI.pendingFixed = false; }
      setupUI.data.mapping = r.mapping;
      setupUI.data.problems = r.problems || [];
      setupUI.saved[item] = { ok: true, text: 'Сохранено' };
      setSetupStatus(r.status, r.detail);
      renderFlex();
      loadState();
    }).catch(function (e) {
      setupUI.saved[item] = { ok: false, text: e.message };
      renderFlex(); // back to the saved value, with the server's reason
    });
  }

  function pipelineOf(id) {
    var list = setupUI.data.options.pipelines;
    for (var i = 0; i < list.length; i++) { if (list[i].id === id) { return list[i]; } }
    return null;
  }

  function pipelineBlock(ps, mapping) {
    var pm = (mapping && mapping.pipelines && mapping.pipelines[ps.key]) || null;
    var box = el('div', 'map-pipeline');
    box.dataset.pipeline = ps.key;
    var head = el('div', 'map-row');
    var name = el('div', 'map-name');
    name.appendChild(el('b', '', ps.name));
    name.appendChild(el('span', 'req', ' *'));
    head.appendChild(name);
    var item = 'pipeline:' + ps.key;
    var opts = setupUI.data.options.pipelines.map(function (p) {
      return { value: p.id, label: p.name + (p.archived ? ' (в архиве)' : ''), disabled: p.archived };
    });
    var sel = select(item, opts, pm && pm.pipeline_id, { label: '— выберите воронку —', disabled: true });
    sel.addEventListener('change', function () { saveItem(item, Number(sel.value)); });
    var cell = el('div', 'map-pick');
    cell.appendChild(sel);
    problemNotes(item, cell);
    head.appendChild(cell);
    head.appendChild(saveStatus(item));
    box.appendChild(head);

    var pipe = pm && pm.pipeline_id ? pipelineOf(pm.pipeline_id) : null;
    if (!pipe) {
      box.appendChild(el('p', 'muted small', 'Выберите воронку, чтобы сопоставить этапы.'));
      return box;
    }
    var stageOpts = pipe.stages.filter(function (s) { return !s.system; }).map(function (s) { return { value: s.id, label: s.name }; });
    var table = el('table', 'grid map stages');
    var tbody = el('tbody');
    ps.stages.forEach(function (st) {
      var tr = el('tr');
      tr.dataset.item = st.key;
      var td = el('td', 'map-name');
      td.appendChild(document.createTextNode(st.name));
      td.appendChild(el('span', 'req', ' *'));
      tr.appendChild(td);
      var pick = el('td', 'map-pick');
      var s = select(st.key, stageOpts, pm.stages && pm.stages[st.state], { label: '— выберите этап —', disabled: true });
      s.addEventListener('change', function () { saveItem(st.key, Number(s.value)); });
      pick.appendChild(s);
      problemNotes(st.key, pick);
      tr.appendChild(pick);
      var stat = el('td', 'map-save');
      stat.appendChild(saveStatus(st.key));
      tr.appendChild(stat);
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    box.appendChild(table);

    var exItem = 'exceptions:' + ps.key;
    var ex = el('div', 'map-exceptions');
    ex.dataset.item = exItem;
    ex.appendChild(el('div', 'muted small', 'Исключения — этапы, с которых синхронизация не переносит сделки:'));
    var chosen = pm.exceptions || [];
    var reason = flexDisabled();
    pipe.stages.forEach(function (s) {
      var label = el('label', 'check inline');
      var c = el('input', 'map-exception');
      c.type = 'checkbox';
      c.value = String(s.id);
      c.checked = chosen.indexOf(s.id) >= 0;
      c.disabled = !!reason;
      c.addEventListener('change', function () {
        var ids = [];
        ex.querySelectorAll('input.map-exception').forEach(function (i) { if (i.checked) { ids.push(Number(i.value)); } });
        saveItem(exItem, ids);
      });
      label.appendChild(c);
      label.appendChild(document.createTextNode(s.name));
      ex.appendChild(label);
    });
    ex.appendChild(saveStatus(exItem));
    problemNotes(exItem, ex);
    box.appendChild(ex);
    return box;
  }

  function fieldRow(entity, fs, mapping) {
    var fm = mapping && mapping[entity] ? mapping[entity][fs.datum] : null;
    var types = fs.types.map(function (t) { return t.type; });
    var all = setupUI.data.options.fields[entity] || [];
    // A datum amoCRM keeps in a predefined field (Телефон: PHONE) takes only that field.
    var code = fs.datum.toUpperCase();
    var predefined = all.some(function (f) { return f.code === code; });
    var fields = all.filter(function (f) { return predefined ? f.code === code : types.indexOf(f.type) >= 0; });
    var tr = el('tr');
    tr.dataset.item = fs.key;
    var name = el('td', 'map-name');
    name.appendChild(document.createTextNode(fs.name));
    if (fs.required) { name.appendChild(el('span', 'req', ' *')); }
    name.appendChild(el('div', 'muted small field-type', 'Тип поля: ' + fs.types.map(function (t) { return t.label; }).join(' или ')));
    tr.appendChild(name);
    var pick = el('td', 'map-pick');
    var placeholder = fs.required ? { label: '— выберите поле —', disabled: true } : { label: 'Не передавать' };
    var sel = select(fs.key, fields.map(function (f) { return { value: f.id, label: f.name + ' · ' + f.type_label }; }),
      fm && fm.field_id, placeholder);
    sel.addEventListener('change', function () { saveItem(fs.key, sel.value ? Number(sel.value) : null); });
    pick.appendChild(sel);
    if (fields.length === 0) { pick.appendChild(el('div', 'muted small', 'В amoCRM нет поля подходящего типа: создайте его или выполните автонастройку.')); }
    problemNotes(fs.key, pick);
    tr.appendChild(pick);
    var stat = el('td', 'map-save');
    stat.appendChild(saveStatus(fs.key));
    tr.appendChild(stat);
    return tr;
  }

  function userOptions() {
    return (setupUI.data.options.users || []).map(function (u) {
      return { value: u.id, label: u.name + (u.active ? '' : ' (неактивен)'), disabled: !u.active };
    });
  }

  function responsibleBlock(mapping) {
    var item = 'responsible';
    var policy = (mapping && mapping.responsible) || { mode: 'doctor' };
    var mode = setupUI.pendingFixed ? 'fixed' : (policy.mode || 'doctor');
    var overrides = policy.overrides || {};
    var reason = flexDisabled();
    var box = el('div', 'map-responsible');
    var save = function (p) { saveItem(item, p); };
    var current = function () { return { mode: mode, user_id: policy.user_id || 0, overrides: overrides }; };

    [['doctor', 'Врач приёма — пользователь amoCRM с тем же именем'], ['fixed', 'Всегда один пользователь']].forEach(function (m) {
      var label = el('label', 'check');
      var r = el('input', 'resp-mode');
      r.type = 'radio';
      r.name = 'resp-mode';
      r.value = m[0];
      r.checked = mode === m[0];
      r.disabled = !!reason;
      r.addEventListener('change', function () {
        if (m[0] === 'fixed' && !policy.user_id) {
          // Nothing to save until a user is chosen.
          setupUI.pendingFixed = true;
          setupUI.saved = {};
          setupUI.saved[item] = { wait: true, text: 'Выберите пользователя' };
          renderFlex();
        } else if (m[0] === 'fixed') {
          save({ mode: 'fixed', user_id: policy.user_id });
        } else {
          setupUI.pendingFixed = false;
          if (mode === 'doctor') { renderFlex(); return; }
          save({ mode: 'doctor', user_id: 0, overrides: overrides });
        }
      });
      label.appendChild(r);
      label.appendChild(document.createTextNode(m[1]));
      box.appendChild(label);
    });

    var row = el('div', 'map-row');
    if (mode === 'fixed') {
      row.appendChild(el('div', 'map-name', 'Пользователь'));
      var u = select('responsible:user', userOptions(), policy.user_id, { label: '— выберите пользователя —', disabled: true });
      u.id = 'resp-user';
      u.addEventListener('change', function () { save({ mode: 'fixed', user_id: Number(u.value) }); });
      row.appendChild(u);
    } else {
      row.appendChild(el('div', 'map-name', 'Если врач не найден'));
      var f = select('responsible:fallback', userOptions(), policy.user_id, { label: 'Ответственный по умолчанию в amoCRM' });
      f.id = 'resp-fallback';
      f.addEventListener('change', function () { var p = current(); p.user_id = Number(f.value || 0); save(p); });
      row.appendChild(f);
    }
    row.appendChild(saveStatus(item));
    box.appendChild(row);
    problemNotes(item, box);
    if (mode !== 'doctor') { return box; }

    // The override table: an IDENT doctor id → an amoCRM user; it wins over name matching.
    box.appendChild(el('div', 'muted small', 'Сопоставление вручную (важнее совпадения по имени):'));
    var table = el('table', 'grid map overrides');
    table.id = 'resp-overrides';
    var tbody = el('tbody');
    var users = setupUI.data.options.users || [];
    Object.keys(overrides).sort().forEach(function (doctor) {
      var tr = el('tr');
      tr.appendChild(el('td', '', 'Врач IDENT № ' + doctor));
      var name = String(overrides[doctor]);
      users.forEach(function (x) { if (x.id === overrides[doctor]) { name = x.name; } });
      tr.appendChild(el('td', '', name));
      var td = el('td');
      var del = el('button', 'btn small', 'Удалить');
      del.disabled = !!reason;
      del.addEventListener('click', function () {
        var p = current();
        p.overrides = Object.assign({}, overrides);
        delete p.overrides[doctor];
        save(p);
      });
      td.appendChild(del);
      tr.appendChild(td);
      tbody.appendChild(tr);
    });
    var add = el('tr');
    var idTd = el('td');
    var idInput = el('input', 'ov-doctor');
    idInput.placeholder = 'ID врача в IDENT';
    idInput.disabled = !!reason;
    idTd.appendChild(idInput);
    add.appendChild(idTd);
    var userTd = el('td');
    var userSel = select('responsible:override', userOptions(), 0, { label: '— пользователь amoCRM —', disabled: true });
    userTd.appendChild(userSel);
    add.appendChild(userTd);
    var btnTd = el('td');
    var addBtn = el('button', 'btn small', 'Добавить');
    addBtn.disabled = !!reason;
    addBtn.addEventListener('click', function () {
      var doctor = idInput.value.trim();
      if (!/^\d+$/.test(doctor) || !userSel.value) {
        setupUI.saved = {};
        setupUI.saved[item] = { ok: false, text: 'Укажите ID врача (цифрами) и пользователя amoCRM' };
        renderFlex();
        return;
      }
      var p = current();
      p.overrides = Object.assign({}, overrides);
      p.overrides[doctor] = Number(userSel.value);
      save(p);
    });
    btnTd.appendChild(addBtn);
    add.appendChild(btnTd);
    tbody.appendChild(add);
    table.appendChild(tbody);
    box.appendChild(table);
    return box;
  }

  function renderFlex() {
    var d = setupUI.data;
    if (!d) { return; }
    $('setup-loading').hidden = true;
    showError('setup-options-error', d.options ? '' : (d.options_error || 'Не удалось прочитать настройки amoCRM.'));
    $('setup-flex-body').hidden = !d.options;
    if (!d.options) { return; }
    var pipes = $('map-pipelines');
    pipes.textContent = '';
    d.plan.pipelines.forEach(function (ps) { pipes.appendChild(pipelineBlock(ps, d.mapping)); });
    ['contact', 'lead'].forEach(function (entity) {
      var tbody = $('map-' + entity).querySelector('tbody');
      tbody.textContent = '';
      d.plan[entity].forEach(function (fs) { tbody.appendChild(fieldRow(entity, fs, d.mapping)); });
    });
    var resp = $('map-responsible');
    resp.textContent = '';
    resp.appendChild(responsibleBlock(d.mapping));
  }

  // Sync rules: «Продолжать входящие заявки» (rule 6, PUT /sync/settings).
  // The card is built here and appended to «Настройки»; the state poll sets
  // the checkbox from state.sync, except while a save is under way.
  var inboundUI = { saving: false, saved: null };

  (function buildInboundCard() {
    var card = el('div', 'card');
    card.id = 'sync-rules';
    card.appendChild(el('h2', '', 'Правила передачи данных'));
    var label = el('label', 'check');
    var box = el('input');
    box.type = 'checkbox';
    box.id = 'continue-inbound';
    box.disabled = true;
    var text = el('span');
    text.appendChild(el('span', 'check-title', 'Продолжать входящие заявки'));
    text.appendChild(el('span', 'save-status'));
    text.lastChild.id = 'continue-inbound-status';
    text.appendChild(el('span', 'hint', 'Если у контакта пациента есть открытая сделка из звонка или заявки с сайта, созданная за последние 30 дней ' +
      'вне воронок приёмов, следующая запись пациента на приём продолжит эту сделку, сохранив её источник и UTM-метки; ' +
      'если настройка выключена, для записи создаётся новая сделка.'));
    label.appendChild(box);
    label.appendChild(text);
    card.appendChild(label);
    var reason = el('p', 'muted small', ADMIN_ONLY);
    reason.id = 'continue-inbound-reason';
    reason.hidden = true;
    card.appendChild(reason);
    $('panel-settings').appendChild(card);
    box.addEventListener('change', function () { saveInbound(box.checked); });
  })();

  function renderInbound() {
    var box = $('continue-inbound');
    var known = !!(state && state.sync && typeof state.sync.continue_inbound_leads === 'boolean');
    $('sync-rules').hidden = !known;
    if (!known) { return; }
    if (!inboundUI.saving) { box.checked = state.sync.continue_inbound_leads; }
    var admin = isAdminUser();
    box.disabled = !admin || inboundUI.saving;
    box.title = admin ? '' : ADMIN_ONLY;
    $('continue-inbound-reason').hidden = admin;
    var st = $('continue-inbound-status');
    var s = inboundUI.saved;
    st.textContent = s ? s.text : '';
    st.className = 'save-status' + (s ? ' ' + (s.ok ? 'ok' : (s.wait ? 'wait' : 'error')) : '');
  }

  function saveInbound(on) {
    inboundUI.saving = true;
    inboundUI.saved = { wait: true, text: 'Сохраняется…' };
    renderInbound();
    api('PUT', '/sync/settings', { continue_inbound_leads: on }).then(json).then(function (r) {
      state.sync.continue_inbound_leads = r.continue_inbound_leads;
      inboundUI.saved = { ok: true, text: 'Сохранено' };
    }).catch(function (e) {
      inboundUI.saved = { ok: false, text: e.message }; // the box goes back to the saved value
    }).then(function () {
      inboundUI.saving = false;
      renderInbound();
      loadState(); // a poll started before the save must not show the old value
    });
  }

  refreshNow();
})();
