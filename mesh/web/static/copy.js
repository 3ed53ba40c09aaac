// Copy buttons: <button class="copy" data-copy="ID"> copies the text of element ID.
// The buttons come hidden and are shown here: without JavaScript there is no button that does
// nothing, and the text stays selectable in its <pre>.
(function () {
  "use strict";
  var buttons = document.querySelectorAll("button.copy[hidden]");
  for (var i = 0; i < buttons.length; i++) buttons[i].hidden = false;
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    var status = button.parentElement.querySelector(".copy-status");
    var done = function (ok) {
      if (status) status.textContent = button.getAttribute(ok ? "data-done" : "data-failed");
    };
    var text = source.innerText.trim();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, function () { fallback(); });
    } else { fallback(); }
    function fallback() {
      var range = document.createRange();
      range.selectNodeContents(source);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      done(ok);
    }
  });
})();
