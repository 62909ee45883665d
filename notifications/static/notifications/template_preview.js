// Live preview on the template form. The server renders (one implementation of
// variables and of the GSM-7 / UCS-2 segment count, notifications.rendering), this
// only posts the fields as they change and shows what comes back: the preview, the
// characters and SMS segments under the body, and the built-in text for the chosen
// event and language (prefilled into an empty body).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("lanzuan-template-preview");
    var form = box && box.closest("form");
    if (!form) {
      return;
    }
    var lengthBox = document.getElementById("lanzuan-template-length");
    var builtInBox = document.getElementById("lanzuan-template-built-in");
    var names = ["tenant", "event", "channel", "language", "subject", "body"];
    var builtIn = null;
    var prefilled = null; // the text we put into the body, until staff change it
    var timer = null;

    function field(name) {
      return form.elements.namedItem(name);
    }

    function useBuiltIn() {
      var body = field("body");
      var subject = field("subject");
      if (!builtIn || !body) {
        return;
      }
      body.value = builtIn.body;
      if (subject && builtIn.subject && !subject.value) {
        subject.value = builtIn.subject;
      }
      prefilled = builtIn.body;
      schedule();
    }

    function refresh() {
      var data = new FormData();
      names.forEach(function (name) {
        var element = field(name);
        if (element) {
          data.append(name, element.value);
        }
      });
      var token = field("csrfmiddlewaretoken");
      fetch(box.dataset.previewUrl, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { "X-CSRFToken": token ? token.value : "" },
      })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (payload) {
          if (!payload) {
            return;
          }
          box.innerHTML = payload.html; // escaped by the server
          if (lengthBox && payload.length_html) {
            lengthBox.innerHTML = payload.length_html;
          }
          if (builtInBox && payload.built_in_html) {
            builtInBox.innerHTML = payload.built_in_html;
          }
          builtIn = payload.built_in;
          var body = field("body");
          // An empty body (or the text we prefilled, after the event changed)
          // starts from the built-in text of the chosen event and language.
          if (builtIn && body && (!body.value || body.value === prefilled) && body.value !== builtIn.body) {
            useBuiltIn();
          }
        })
        .catch(function () { /* keep the last preview */ });
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(refresh, 250);
    }

    names.forEach(function (name) {
      var element = field(name);
      if (element) {
        element.addEventListener("input", schedule);
        element.addEventListener("change", schedule);
      }
    });
    form.addEventListener("click", function (event) {
      if (event.target && event.target.hasAttribute("data-lanzuan-use-built-in")) {
        event.preventDefault();
        useBuiltIn();
      }
    });
    refresh();
  });
})();
