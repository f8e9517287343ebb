// Hosts a widget the way amoCRM's settings area does: loads the widget's
// script.js as an AMD module, builds the widget object with the SDK methods
// amoCRM gives it, runs render → init → bind_actions, then advancedSettings
// into #list_page_holder. Configuration comes from the page's data attributes.
(function () {
  'use strict';
  var host = document.getElementById('widget-host');
  var cfg = {
    accountId: host.dataset.accountId,
    userId: parseInt(host.dataset.userId, 10),
    userName: host.dataset.userName,
    subdomain: host.dataset.subdomain,
    widgetURL: host.dataset.widgetUrl,
    lang: host.dataset.lang || 'ru'
  };
  var status = document.getElementById('widget-status');
  function report(text) { status.textContent = text; }

  // A minimal AMD: the widget's define() hands us its factory; 'jquery' is the
  // page's jQuery, as in amoCRM.
  var modules = { jquery: window.jQuery, underscore: window._ };
  var pending = null;
  window.define = function (deps, factory) {
    if (typeof deps === 'function') { factory = deps; deps = []; }
    pending = factory.apply(null, deps.map(function (d) { return modules[d]; }));
  };
  window.define.amd = { jQuery: true };

  function lookup(obj, key) {
    return String(key).split('.').reduce(function (o, k) { return o && o[k] !== undefined ? o[k] : undefined; }, obj);
  }

  function start(i18n, manifest) {
    var Widget = pending;
    if (typeof Widget !== 'function') { report('script.js did not define a widget constructor'); return; }
    var settings = { widget_code: (manifest.widget && manifest.widget.code) || 'svyazka', active: 'Y' };
    var base = {
      langs: i18n,
      params: settings,
      i18n: function (key) { var v = lookup(i18n, key); return v === undefined ? key : v; },
      get_settings: function () { return settings; },
      set_settings: function (s) { jQuery.extend(settings, s); },
      get_install_status: function () { return 'installed'; },
      get_version: function () { return manifest.widget ? manifest.widget.version : ''; },
      system: function () {
        return { area: 'settings', amouser_id: cfg.userId, amouser: cfg.userName, subdomain: cfg.subdomain,
          domain: cfg.subdomain + '.amocrm.ru', server: 'ru' };
      },
      render_template: function (tpl, data) { return tpl.data || ''; },
      // Each call gets a fresh disposable token, as amoCRM mints one per request.
      $authorizedAjax: function (options) {
        return jQuery.ajax({ url: '/_sandbox/accounts/' + cfg.accountId + '/widget-token', type: 'POST',
          contentType: 'application/json', data: JSON.stringify({ user_id: cfg.userId }), dataType: 'json' })
          .then(function (r) {
            var opts = jQuery.extend(true, {}, options);
            opts.headers = jQuery.extend({}, opts.headers, { 'X-Auth-Token': r.token });
            return jQuery.ajax(opts);
          });
      }
    };
    var widget = Object.create(base);
    Widget.call(widget);
    var cb = widget.callbacks || {};
    var ok = [cb.render, cb.init, cb.bind_actions].every(function (f) { return typeof f !== 'function' || f.call(widget) !== false; });
    if (!ok) { report('render/init/bind_actions returned false'); return; }
    if (typeof cb.advancedSettings !== 'function') { report('the widget has no advancedSettings callback'); return; }
    cb.advancedSettings.call(widget);
    report('widget loaded');
    window.svyazkaWidget = widget;
  }

  jQuery.when(
    jQuery.getJSON(cfg.widgetURL + '/i18n/' + cfg.lang + '.json'),
    jQuery.getJSON(cfg.widgetURL + '/manifest.json')
  ).then(function (i18n, manifest) {
    var script = document.createElement('script');
    script.src = cfg.widgetURL + '/script.js';
    script.onload = function () { start(i18n[0], manifest[0]); };
    script.onerror = function () { report('cannot load ' + script.src); };
    document.head.appendChild(script);
  }, function () { report('cannot load the widget from ' + cfg.widgetURL); });
})();
