// Progressive enhancement only: every page works without it.
// Ticking a service selects "only the services I choose".
document.addEventListener("change", function (event) {
  var box = event.target;
  if (box && box.hasAttribute && box.hasAttribute("data-scope-some") && box.checked) {
    var some = document.getElementById("scope-some");
    if (some) { some.checked = true; }
  }
});

// After a form error the page is shown again by a redirect (post/redirect/get), and
// the server does not keep the number it was sent. The number typed goes into this
// tab's sessionStorage on submit and comes back only into the same page's empty field
// when that page shows an error; it is removed from storage either way.
(function () {
  function key(input) { return "optout:keep:" + location.pathname + ":" + input.name; }
  var storage;
  try { storage = window.sessionStorage; } catch (e) { return; }
  if (!storage) { return; }
  var hasError = document.querySelector(".field-error") !== null;
  document.querySelectorAll("input[data-keep]").forEach(function (input) {
    var saved = storage.getItem(key(input));
    storage.removeItem(key(input));
    if (hasError && saved && !input.value) { input.value = saved; }
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || !form.querySelectorAll) { return; }
    form.querySelectorAll("input[data-keep]").forEach(function (input) {
      try { storage.setItem(key(input), input.value); } catch (e) { /* storage full or off */ }
    });
  });
})();

// The signed receipt's "copy" button (shown only when the browser can copy).
(function () {
  if (!navigator.clipboard) { return; }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) { return; }
      navigator.clipboard.writeText(source.value).then(function () {
        button.textContent = button.getAttribute("data-copied");
      }, function () { source.select(); });
    });
  });
})();
