// The visit page's diagnosis search: results as one types; arrow keys choose, Enter or a click
// adds the code to the note's diagnoses. Without this script the codes are typed by hand.
(function () {
  "use strict";
  var search = document.getElementById("diagnosis-search");
  var list = document.getElementById("diagnosis-results");
  var codes = document.getElementById("note-diagnoses");
  var names = document.getElementById("diagnosis-names");
  if (!search || !list || !codes) return;
  var results = [], active = -1, asked = 0;

  function show() {
    list.textContent = "";
    results.forEach(function (r, i) {
      var li = document.createElement("li");
      li.textContent = r.code + " " + r.name;
      li.dataset.code = r.code;
      if (i === active) li.className = "active";
      li.addEventListener("mousedown", function (e) { e.preventDefault(); add(i); });
      list.appendChild(li);
    });
  }

  function add(i) {
    var r = results[i];
    if (!r) return;
    var have = codes.value.split(/[\s,，;；]+/).filter(function (c) { return c.length > 0; });
    if (have.indexOf(r.code) < 0) have.push(r.code);
    codes.value = have.join(", ");
    if (names) {
      var li = document.createElement("li");
      li.textContent = r.code + " " + r.name;
      names.appendChild(li);
    }
    search.value = "";
    results = []; active = -1;
    show();
  }

  search.addEventListener("input", function () {
    var q = search.value.trim();
    var n = ++asked;
    if (!q) { results = []; active = -1; show(); return; }
    fetch("/staff/diagnoses?format=json&q=" + encodeURIComponent(q), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { results: [] }; })
      .then(function (body) {
        if (n !== asked) return;
        results = body.results || [];
        active = results.length ? 0 : -1;
        show();
      })
      .catch(function () {});
  });

  search.addEventListener("keydown", function (e) {
    if (e.key === "ArrowDown" && results.length) { active = (active + 1) % results.length; show(); e.preventDefault(); }
    else if (e.key === "ArrowUp" && results.length) { active = (active - 1 + results.length) % results.length; show(); e.preventDefault(); }
    else if (e.key === "Enter") { e.preventDefault(); if (active >= 0) add(active); }
    else if (e.key === "Escape") { results = []; active = -1; show(); }
  });
})();

// Saved phrases: Alt+1 to Alt+9 (or a click on a phrase) put the phrase in the last text box the
// cursor was in, at the cursor.
(function () {
  "use strict";
  var buttons = Array.prototype.slice.call(document.querySelectorAll("#phrase-bar button.phrase"));
  if (!buttons.length) return;
  var last = null;
  document.querySelectorAll("form#visit-note textarea").forEach(function (t) {
    t.addEventListener("focus", function () { last = t; });
  });

  function insert(text) {
    var box = last || document.querySelector("form#visit-note textarea");
    if (!box) return;
    var start = box.selectionStart || 0, end = box.selectionEnd || 0;
    box.value = box.value.slice(0, start) + text + box.value.slice(end);
    box.focus();
    box.selectionStart = box.selectionEnd = start + text.length;
  }

  buttons.forEach(function (b) {
    b.addEventListener("mousedown", function (e) { e.preventDefault(); });
    b.addEventListener("click", function () { insert(b.dataset.text); });
  });
  document.addEventListener("keydown", function (e) {
    if (!e.altKey || e.ctrlKey || e.metaKey) return;
    // By the key's place, not its character: Shift or another keyboard layout does not change it.
    var m = /^Digit([1-9])$/.exec(e.code || "");
    var n = m ? parseInt(m[1], 10) : 0;
    if (n >= 1 && n <= buttons.length) { e.preventDefault(); insert(buttons[n - 1].dataset.text); }
  });
})();
