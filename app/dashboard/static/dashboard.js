// Keep a live page current without reloading it. A page is live while its
// #live region says data-live="true". Its data-stream URL is a server-sent
// event stream that says when a run changed; the page then fetches its own
// region (?fragment=live) and swaps it in. When the stream is refused (503,
// signed out) or the browser has no EventSource, it polls every 2 s instead
// and tries the stream again later. A hidden tab holds no stream and does not
// poll; it catches up when shown. window.stepwiseLive says what it is doing.
// The stream speaks for runs (a notification per run status change, fed by
// LISTEN/NOTIFY); a step starting inside a running run sends none — a NOTIFY
// per step would serialise every checkpoint's commit — so a page that shows
// steps (data-step-poll) also refreshes every 2 s while its run is active.
// Also: confirm before a cancel.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var RETRY_STREAM_MS = 30000;
  var state = (window.stepwiseLive = { mode: "idle", events: 0, refreshes: 0 });
  var source = null;
  var pollTimer = null;
  var stepTimer = null;
  var retryTimer = null;
  var inFlight = false;
  var again = false;

  function region() { return document.getElementById("live"); }

  function isLive() {
    var r = region();
    return !!r && r.getAttribute("data-live") === "true";
  }

  function fragmentUrl() {
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "live");
    return url.toString();
  }

  function refresh() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    fetch(fragmentUrl(), { credentials: "same-origin", redirect: "error" })
      .then(function (response) { if (!response.ok) throw new Error(response.status); return response.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        var current = region();
        if (fresh && current && fresh.outerHTML !== current.outerHTML) current.replaceWith(fresh);
        state.refreshes += 1;
      })
      .catch(function () { /* server restarting or signed out: the next event or poll retries */ })
      .then(function () {
        inFlight = false;
        if (!isLive()) { stop(); return; }
        if (again) { again = false; refresh(); }
      });
  }

  function closeStream() {
    if (source) { source.close(); source = null; }
    if (stepTimer) { clearInterval(stepTimer); stepTimer = null; }
  }

  function stopPolling() {
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
  }

  function stop() {
    closeStream();
    stopPolling();
    state.mode = "idle";
  }

  function startPolling() {
    closeStream();
    state.mode = "poll";
    if (!pollTimer) pollTimer = setInterval(function () { if (!document.hidden) refresh(); }, POLL_MS);
    if (window.EventSource && !retryTimer) {
      retryTimer = setTimeout(function () { retryTimer = null; if (isLive()) openStream(); }, RETRY_STREAM_MS);
    }
  }

  function openStream() {
    var url = region().getAttribute("data-stream");
    if (!window.EventSource || !url) { startPolling(); return; }
    stopPolling();
    closeStream();
    source = new EventSource(url, { withCredentials: true });
    state.mode = "stream";
    if (region().getAttribute("data-step-poll") === "true") {
      stepTimer = setInterval(function () { if (!document.hidden) refresh(); }, POLL_MS);
    }
    // on every (re)connection: catch up on what changed while not listening
    source.addEventListener("open", function () { refresh(); });
    source.addEventListener("change", function () { state.events += 1; refresh(); });
    source.addEventListener("error", function () {
      // CONNECTING: a stream ended as planned and the browser reconnects by itself;
      // CLOSED: the server refused it, so poll for a while
      if (source && source.readyState === EventSource.CLOSED) startPolling();
    });
  }

  document.addEventListener("visibilitychange", function () {
    if (!isLive()) return;
    if (document.hidden) {
      if (state.mode === "stream") { closeStream(); state.mode = "paused"; }
    } else if (state.mode === "paused") {
      openStream();
    }
  });

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (isLive()) openStream();
  });
})();
