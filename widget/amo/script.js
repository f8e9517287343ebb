define(['jquery'], function ($) {
  'use strict';

  // Our backend; the archive builder (svyazka widget-archive) puts PUBLIC_URL here.
  var BACKEND_URL = '__SVYAZKA_BACKEND_URL__';

  var CustomWidget = function () {
    var self = this;

    function texts(group) {
      return self.i18n(group) || {};
    }

    // The widget's own style.css, linked once from the widget's folder as
    // amoCRM documents (never from an outside host).
    function linkStyles() {
      var path = self.params && self.params.path;
      if (!path || $('#svyazka-widget-style').length) {
        return;
      }
      $('head').append($('<link id="svyazka-widget-style" type="text/css" rel="stylesheet">')
        .attr('href', path + '/style.css?v=' + self.get_version()));
    }

    // openSettings asks our backend, with amoCRM's disposable token, for a
    // short-lived URL of the settings page and frames it. One request per
    // call; on failure the user gets a retry button, nothing retries by itself.
    function openSettings($holder) {
      var $root = $('<div class="svyazka-widget"></div>');
      $root.append($('<div class="svyazka-widget__loading"></div>').text('…'));
      $holder.empty().append($root);

      self.$authorizedAjax({
        url: BACKEND_URL + '/api/widget/v1/session',
        type: 'POST',
        dataType: 'json'
      }).done(function (resp) {
        if (!resp || typeof resp.iframe_url !== 'string' || resp.iframe_url.indexOf(BACKEND_URL + '/') !== 0) {
          showError($holder, $root, null);
          return;
        }
        // Inline sizes too, so the page fits even before style.css arrives.
        var $frame = $('<iframe class="svyazka-widget__frame" frameborder="0"></iframe>')
          .attr({ src: resp.iframe_url, title: texts('advanced').title })
          .css({ display: 'block', width: '100%', height: 'calc(100vh - 60px)', minHeight: '700px', border: '0' });
        $root.empty().append($frame);
      }).fail(function (xhr) {
        showError($holder, $root, xhr);
      });
    }

    function showError($holder, $root, xhr) {
      var errors = texts('errors');
      var message = errors.load;
      // The backend answers {"error": {"code", "message"}} with a user-safe message.
      if (xhr && xhr.responseJSON && xhr.responseJSON.error && xhr.responseJSON.error.message) {
        message = xhr.responseJSON.error.message;
      }
      var $box = $('<div class="svyazka-widget__error"></div>');
      $box.append($('<p></p>').text(message));
      $box.append($('<p class="svyazka-widget__hint"></p>').text(errors.support));
      $('<button type="button" class="button-input svyazka-widget__retry"></button>')
        .text(errors.retry)
        .on('click', function () { openSettings($holder); })
        .appendTo($box);
      $root.empty().append($box);
    }

    this.callbacks = {
      render: function () {
        return true;
      },
      init: function () {
        linkStyles();
        return true;
      },
      bind_actions: function () {
        return true;
      },
      // The install/settings modal: a short note and a link to the advanced
      // settings page, where everything else lives (our iframe).
      settings: function ($modal_body) {
        var code = self.get_settings().widget_code;
        var text = texts('settings');
        var $info = $('<div class="svyazka-widget svyazka-widget__settings"></div>');
        $info.append($('<p></p>').text(text.intro));
        if (self.get_install_status() === 'installed' && code) {
          $info.append($('<a class="button-input svyazka-widget__link"></a>')
            .attr('href', '/settings/widgets/' + encodeURIComponent(code) + '/')
            .text(text.open));
        }
        var $block = $modal_body.find('.widget_settings_block');
        if ($block.length) {
          $block.first().append($info);
        } else {
          $modal_body.append($info);
        }
        return true;
      },
      onSave: function () {
        return true;
      },
      destroy: function () {
        $('.svyazka-widget').remove();
        return true;
      },
      // The advanced settings page (Settings → Связка): amoCRM gives the
      // widget #list_page_holder to draw in.
      advancedSettings: function () {
        var $holder = $('#list_page_holder');
        if ($holder.length) {
          openSettings($holder);
        }
        return true;
      }
    };
    return this;
  };

  return CustomWidget;
});
