// Progressive enhancement only: every page works without it.
// Ticking a service selects "only the services I choose".
document.addEventListener("change", function (event) {
  var box = event.target;
  if (box && box.hasAttribute && box.hasAttribute("data-scope-some") && box.checked) {
    var some = document.getElementById("scope-some");
    if (some) { some.checked = true; }
  }
});
