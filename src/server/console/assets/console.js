// The audit feed's live view: new events from /audit/tail (server-sent events) prepended to
// the table. Cells are filled with textContent only, so nothing in an event becomes markup.
"use strict";
(function () {
  const status = document.getElementById("tail-status");
  const table = document.getElementById("tail");
  if (!status || !table || !window.EventSource) return;
  const body = table.tBodies[0];
  const source = new EventSource(status.dataset.src);
  source.addEventListener("open", () => { status.textContent = "Live: new events appear below."; });
  source.addEventListener("error", () => {
    status.textContent = source.readyState === EventSource.CLOSED
      ? "Disconnected: reload the page (sign in again if the session ended)."
      : "Disconnected; retrying…";
  });
  source.addEventListener("lagged", (m) => { source.close(); status.textContent = m.data; });
  source.addEventListener("audit", (m) => {
    let e;
    try { e = JSON.parse(m.data); } catch (_) { return; }
    const row = document.createElement("tr");
    row.dataset.sequence = e.sequence;
    row.dataset.outcome = e.outcome;
    if (e.bypass) row.className = "bypass";
    const cell = (text) => { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td; };
    cell(String(e.sequence));
    cell(e.time);
    cell(e.source);
    cell(e.actor);
    cell(e.action);
    const key = cell("");
    if (e.key_id) {
      const a = document.createElement("a");
      a.href = "/keys/" + encodeURIComponent(e.key_id);
      a.textContent = e.key_name || e.key_id;
      key.appendChild(a);
    } else {
      key.textContent = e.key_name;
    }
    cell(e.key_version > 0 ? "v" + e.key_version : "");
    cell(e.reason ? e.outcome + " (" + e.reason + ")" : e.outcome);
    cell(e.request_id);
    body.insertBefore(row, body.firstChild);
    while (body.rows.length > 200) body.deleteRow(body.rows.length - 1);
  });
})();
