define(['jquery'], function ($) {
  'use strict';

  // The backend is set when the archive is built (svyazka widget-archive).
  var BACKEND_URL = '__SVYAZKA_BACKEND_URL__';

  var CustomWidget = function () {
    var self = this;

    // openSettings asks our backend, with amoCRM's disposable token, for a
    // short-lived URL of the settings page and frames it. One request per
    // call; a failure offers a retry button instead of retrying by itself.
    function openSettings($holder) {
      $holder.html('<div class="svyazka-widget"><div class="svyazka-widget__loading">…</div></div>');
      self.$authorizedAjax({
        url: BACKEND_URL + '/api/widget/v1/session',
        type: 'POST',
        dataType: 'json'
      }).done(function (resp) {
        var $frame = $('<iframe class="svyazka-widget__frame" title="Связка" frameborder="0"></iframe>');
        $frame.attr('src', resp.iframe_url);
        $holder.find('.svyazka-widget').empty().append($frame);
      }).fail(function (xhr) {
        var message = self.i18n('errors').load;
        if (xhr && xhr.responseJSON && xhr.responseJSON.error) {
          message = xhr.responseJSON.error.message;
        }
        var $box = $('<div class="svyazka-widget__error"></div>');
        $box.append($('<p></p>').text(message));
        $box.append($('<p class="svyazka-widget__hint"></p>').text(self.i18n('errors').support));
        var $retry = $('<button type="button" class="button-input svyazka-widget__retry"></button>').text(self.i18n('errors').retry);
        $retry.on('click', function () { openSettings($holder); });
        $box.append($retry);
        $holder.find('.svyazka-widget').empty().append($box);
      });
    }

    this.callbacks = {
      render: function () {
        return true;
      },
      init: function () {
        if (!$('#svyazka-widget-style').length) {
          $('head').append($('<link id="svyazka-widget-style" rel="stylesheet">').attr('href', BACKEND_URL + '/widget/amo/style.css'));
        }
        return true;
      },
      bind_actions: function () {
        return true;
      },
      settings: function ($modal) {
        var code = self.get_settings().widget_code;
        var $info = $('<div class="svyazka-widget svyazka-widget__settings"></div>');
        $info.append($('<p></p>').text(self.i18n('settings').intro));
        $info.append($('<a class="svyazka-widget__link"></a>').attr('href', '/settings/widgets/' + code + '/').text(self.i18n('settings').open));
        $modal.find('.widget_settings_block__descr').after($info);
        return true;
      },
      onSave: function () {
        return true;
      },
      destroy: function () {
        return true;
      },
      advancedSettings: function () {
        openSettings($('#list_page_holder'));
        return true;
      }
    };
    return this;
  };

  return CustomWidget;
});
