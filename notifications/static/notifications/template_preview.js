// Live preview on the template form: the server renders (one implementation of
// variables and SMS segments), this only posts the fields as they change.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("lanzuan-template-preview");
    var form = box && box.closest("form");
    if (!form) {
      return;
    }
    var names = ["tenant", "event", "channel", "language", "subject", "body"];
    var timer = null;
    function refresh() {
      var data = new FormData();
      names.forEach(function (name) {
        var field = form.elements.namedItem(name);
        if (field) {
          data.append(name, field.value);
        }
      });
      var token = form.elements.namedItem("csrfmiddlewaretoken");
      fetch(box.dataset.previewUrl, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { "X-CSRFToken": token ? token.value : "" },
      })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (payload) {
          if (payload) {
            box.innerHTML = payload.html; // escaped by the server
          }
        })
        .catch(function () { /* keep the last preview */ });
    }
    names.forEach(function (name) {
      var field = form.elements.namedItem(name);
      if (field) {
        field.addEventListener("input", function () {
          clearTimeout(timer);
          timer = setTimeout(refresh, 300);
        });
      }
    });
    refresh();
  });
})();
