// Keep a page current while its runs are active: every few seconds fetch the
// same URL and swap in the fresh #live region, until it says it is no longer
// live. Pauses while the tab is hidden. Also: confirm before a cancel.
(function () {
  "use strict";
  var INTERVAL_MS = 2000;

  function live() {
    var region = document.getElementById("live");
    return region && region.getAttribute("data-live") === "true" ? region : null;
  }

  function refresh() {
    var region = live();
    if (!region) return;
    if (document.hidden) { setTimeout(refresh, INTERVAL_MS); return; }
    fetch(window.location.href, { credentials: "same-origin", redirect: "error" })
      .then(function (response) { if (!response.ok) throw new Error(response.status); return response.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh) region.replaceWith(fresh);
      })
      .catch(function () { /* server restarting or signed out: try again later */ })
      .then(function () { setTimeout(refresh, INTERVAL_MS); });
  }

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (live()) setTimeout(refresh, INTERVAL_MS);
  });
})();
