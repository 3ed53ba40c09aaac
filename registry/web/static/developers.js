// "Try it" on the registry's API page. Without JavaScript each form is a plain GET to
// /developers/try, which redirects to the real endpoint. With it, the call is made here with
// fetch (same origin; the CSP's connect-src 'self') and its status and body are shown in the
// page; an optional API key goes in the Authorization header and is never stored.
(function () {
  "use strict";
  var LIMIT = 200000;                       // characters of a body shown at most
  var body = document.getElementById("api-body");
  var keyBox = document.getElementById("try-key-box");
  if (!body || !keyBox) return;
  keyBox.hidden = false;                    // the key is only usable with JavaScript

  function message(name, n) {
    return (body.getAttribute("data-" + name) || "").replace("{n}", String(n));
  }

  function targetOf(form) {
    var path = form.getAttribute("data-path");
    var query = new URLSearchParams();
    form.querySelectorAll("[data-in]").forEach(function (input) {
      var name = input.getAttribute("name");
      if (input.getAttribute("data-in") === "path") {
        path = path.split("{" + name + "}").join(encodeURIComponent(input.value));
      } else if (input.value !== "") {
        query.append(name, input.value);
      }
    });
    var qs = query.toString();
    return path + (qs ? "?" + qs : "");
  }

  function show(result, state, statusText, url, text) {
    result.hidden = false;
    var status = result.parentElement.querySelector(".try-status");
    status.className = "try-status " + state;
    status.textContent = statusText;
    result.querySelector(".try-url code").textContent = url ? "GET " + url : "";
    var shown = text.length > LIMIT ? text.slice(0, LIMIT) + "\n" + message("truncated", LIMIT) : text;
    result.querySelector(".try-body code").textContent = shown;
  }

  function pretty(type, text) {
    if (type.indexOf("json") < 0) return text;
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
  }

  function isText(type) {
    return type === "" || /json|text|xml|pem/.test(type);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form.try-form");
    if (!form) return;
    event.preventDefault();
    var result = form.parentElement.querySelector(".try-result");
    var url = targetOf(form);
    var headers = { Accept: "application/json" };
    var key = document.getElementById("try-key").value.trim();
    if (key) headers.Authorization = "Bearer " + key;
    show(result, "", message("loading"), url, "");
    fetch(url, { headers: headers, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        var type = (response.headers.get("Content-Type") || "").toLowerCase();
        var line = "HTTP " + response.status + (response.statusText ? " " + response.statusText : "");
        var state = response.ok ? "ok" : "error";
        if (!isText(type)) {
          return response.arrayBuffer().then(function (buffer) {
            show(result, state, line, url, type + "\n" + message("binary", buffer.byteLength));
          });
        }
        return response.text().then(function (text) {
          show(result, state, line, url, pretty(type, text));
        });
      })
      .catch(function () { show(result, "error", message("failed"), url, ""); });
  });
})();
