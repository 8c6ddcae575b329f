// The waiting-room display: follows /staff/display/events (server-sent events) and redraws the table.
(function () {
  "use strict";
  var table = document.getElementById("display");
  if (!table || !window.EventSource) { return; }
  var body = table.querySelector("tbody");
  function cell(text, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    if (text) { td.textContent = text; }
    return td;
  }
  function patient(p) {
    var frag = document.createDocumentFragment();
    var n = document.createElement("span"); n.className = "number"; n.textContent = String(p.number);
    var m = document.createElement("span"); m.className = "masked"; m.textContent = p.masked;
    frag.appendChild(n); frag.appendChild(document.createTextNode(" ")); frag.appendChild(m); frag.appendChild(document.createTextNode(" "));
    return frag;
  }
  function draw(rows) {
    var next = document.createElement("tbody");
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-session", r.schedule);
      tr.appendChild(cell(r.room));
      tr.appendChild(cell(r.doctor));
      tr.appendChild(cell(r.time));
      var now = cell("", "now");
      if (r.called) { now.appendChild(patient(r.called)); } else if (r.closed) { now.textContent = table.getAttribute("data-closed"); }
      tr.appendChild(now);
      var waiting = cell("", "next");
      (r.next || []).forEach(function (p) { waiting.appendChild(patient(p)); });
      tr.appendChild(waiting);
      next.appendChild(tr);
    });
    table.replaceChild(next, body);
    body = next;
    table.setAttribute("data-updated", String(Date.now()));
  }
  var source = new EventSource("/staff/display/events?dept=" + encodeURIComponent(table.getAttribute("data-dept")));
  source.onmessage = function (e) {
    try { draw(JSON.parse(e.data).rows || []); } catch (err) { /* a malformed event is skipped */ }
  };
})();
