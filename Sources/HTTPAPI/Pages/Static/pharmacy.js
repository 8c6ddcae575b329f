// The pharmacy queue: follows /staff/pharmacy/events (server-sent events) and, when a prescription
// or a review arrives, fetches this page again and swaps in its queue. Without it the page still
// works; it only needs a reload.
(function () {
  "use strict";
  var queue = document.getElementById("rx-queue");
  if (!queue || !window.EventSource || !window.fetch || !window.DOMParser) { return; }
  var first = true;
  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("rx-queue");
        if (!fresh) { return; }
        queue.replaceWith(fresh);
        queue = fresh;
        queue.setAttribute("data-updated", String(Date.now()));
      })
      .catch(function () { /* the next event tries again */ });
  }
  var source = new EventSource("/staff/pharmacy/events");
  source.onmessage = function () {
    // The first event only says where the counter stands now; the page already shows that.
    if (first) { first = false; return; }
    refresh();
  };
})();
