// Refresh the overview's rows in place: fetch the server-rendered rows
// (already escaped by the server) every few seconds and swap them in.
// Nothing else on any page needs a script.
(function () {
  "use strict";
  var table = document.querySelector("table[data-refresh]");
  if (!table) { return; }
  var body = table.querySelector("tbody");
  var every = parseFloat(table.getAttribute("data-refresh-seconds")) || 2;
  function refresh() {
    fetch(table.getAttribute("data-refresh"), { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.text();
      })
      .then(function (html) {
        body.innerHTML = html;
        table.setAttribute("data-refreshed", String(Date.now()));
        table.classList.remove("stale-data");
      })
      .catch(function () { table.classList.add("stale-data"); })
      .finally(function () { window.setTimeout(refresh, every * 1000); });
  }
  window.setTimeout(refresh, every * 1000);
})();
