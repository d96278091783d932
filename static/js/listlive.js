/* A list page kept live (panel/lists.py): every few seconds the page asks for the rows it lacks,
 * saying which it holds (`known=key.version,...`) and how many rows it counted; the server answers
 * 204 when nothing changed, else the order of the page's keys, only the rows that changed and the
 * new total. Rows that did not change keep their element (and so a ticked checkbox).
 * Also: the bulk form's "select all" box, its count, and its buttons enabled only with a selection.
 */
(function () {
  "use strict";
  const POLL_MS = 3000;

  function rowsOf(tbody) {
    return Array.from(tbody.querySelectorAll(":scope > tr[data-key]"));
  }

  function knownParam(tbody) {
    return rowsOf(tbody).map((tr) => `${tr.dataset.key}.${tr.dataset.v}`).join(",");
  }

  function pollUrl(box, tbody) {
    const url = new URL(box.dataset.liveUrl, window.location.href);
    url.searchParams.set("live", "1");
    url.searchParams.set("known", knownParam(tbody));
    url.searchParams.set("total", box.dataset.total);
    return url;
  }

  function apply(box, table, data) {
    const tbody = table.tBodies[0];
    const held = new Map(rowsOf(tbody).map((tr) => [tr.dataset.key, tr]));
    const ticked = new Set(rowsOf(tbody).filter((tr) => tr.querySelector("input[name=ctid]:checked"))
      .map((tr) => tr.dataset.key));
    const template = document.createElement("template");
    const fresh = [];
    for (const key of data.order) {
      let tr = held.get(key);
      if (key in data.rows) {
        template.innerHTML = data.rows[key];
        tr = template.content.firstElementChild;
        const check = tr.querySelector("input[name=ctid]");
        if (check && ticked.has(key)) check.checked = true;
      }
      if (tr) fresh.push(tr);
    }
    if (!fresh.length) {
      const empty = document.createElement("tr");
      empty.className = "list-empty";
      empty.innerHTML = `<td colspan="${table.dataset.colspan}" class="text-body-secondary"></td>`;
      empty.firstElementChild.textContent = table.dataset.empty;
      fresh.push(empty);
    }
    tbody.replaceChildren(...fresh);
    box.dataset.total = data.total;
    const summary = box.querySelector(".list-summary");
    if (summary && data.summary) {
      template.innerHTML = data.summary.trim();
      summary.replaceWith(template.content.firstElementChild);
    }
    updateBulk();
  }

  function poll(box) {
    const table = box.querySelector("table");
    if (!table) return;
    const again = () => setTimeout(() => poll(box), POLL_MS);
    if (document.hidden) { again(); return; }
    fetch(pollUrl(box, table.tBodies[0]), {headers: {"X-Requested-With": "fetch"}, credentials: "same-origin"})
      .then((response) => (response.status === 200 ? response.json() : null))
      .then((data) => { if (data) apply(box, table, data); })
      .catch(() => {})
      .finally(again);
  }

  function updateBulk() {
    const form = document.getElementById("bulk-form");
    if (!form) return;
    const boxes = Array.from(document.querySelectorAll("input[name=ctid][form=bulk-form]"));
    const n = boxes.filter((b) => b.checked).length;
    document.getElementById("bulk-count").textContent = n;
    form.querySelectorAll("button[name=action]").forEach((b) => { b.disabled = n === 0; });
    const all = document.getElementById("select-all");
    if (all) {
      all.checked = n > 0 && n === boxes.length;
      all.indeterminate = n > 0 && n < boxes.length;
    }
  }

  function setUpBulk(box) {
    if (!document.getElementById("bulk-form")) return;
    const th = box.querySelector("th.select-cell");
    if (th && !document.getElementById("select-all")) {
      th.innerHTML = '<input class="form-check-input" type="checkbox" id="select-all" aria-label="Select all on this page">';
    }
    document.addEventListener("change", (event) => {
      if (event.target.id === "select-all") {
        document.querySelectorAll("input[name=ctid][form=bulk-form]").forEach((b) => { b.checked = event.target.checked; });
      }
      if (event.target.id === "select-all" || event.target.name === "ctid") updateBulk();
    });
    updateBulk();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-live-url]").forEach((box) => {
      setUpBulk(box);
      setTimeout(() => poll(box), POLL_MS);
    });
  });
})();
