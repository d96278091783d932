/* The container page's live parts (containers/live.py): the poller (#ct-live, htmx) sends the digest of
 * every part the page shows; the answer swaps in, out of band, the parts whose digest changed.
 *
 * A part the user is typing in (the focus in a field of one of its forms, or such a field changed and
 * not sent) is left as it is: it keeps its old digest, so the next poll offers it again.
 * While a task holds the container, its log's WebSocket (tasks/consumers.py, as tasklog.js uses it)
 * says when its status changes or it ends, and the poller asks at once instead of at its next tick.
 * Runs again on every page htmx swaps in (a boosted form leads here), so it defines itself once.
 */
(function () {
  "use strict";
  if (window.vzCtLive) { window.vzCtLive.follow(); return; }

  function seen() {
    return Array.from(document.querySelectorAll("[data-live-key]"), (part) => `${part.id}:${part.dataset.liveKey}`).join(",");
  }

  function changed(field) {
    if (field.type === "hidden" || field.type === "submit" || field.type === "button") return false;
    if (field.type === "checkbox" || field.type === "radio") return field.checked !== field.defaultChecked;
    if (field.tagName === "SELECT") return Array.from(field.options).some((o) => o.selected !== o.defaultSelected);
    return field.value !== field.defaultValue;
  }

  // Fields of forms only: the console's terminal has a textarea of its own, which is no form.
  const FIELDS = "form input:not([type=submit]):not([type=button]), form textarea, form select";
  function busy(part) {
    const active = document.activeElement;
    if (active && part.contains(active) && active.matches(FIELDS)) return true;
    return Array.from(part.querySelectorAll(FIELDS)).some(changed);
  }

  document.addEventListener("htmx:configRequest", (event) => {
    if (event.detail.elt.id === "ct-live") event.detail.parameters.live = seen();
  });
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const target = event.detail.target;
    if (target && target.hasAttribute("data-live-key") && busy(target)) event.detail.shouldSwap = false;
  });

  // The container destroyed (or no longer the user's to see) while the page is open: the poll answers
  // 404. Say so once, and stop asking.
  document.addEventListener("htmx:responseError", (event) => {
    const poller = event.detail.elt;
    if (poller.id !== "ct-live" || event.detail.xhr.status !== 404) return;
    const gone = document.createElement("span");
    gone.id = "ct-gone";
    gone.className = "badge text-bg-dark";
    gone.textContent = "gone";
    poller.replaceWith(gone);
    const note = document.createElement("div");
    note.className = "alert alert-warning py-2";
    note.setAttribute("role", "alert");
    note.textContent = "This container no longer exists, or is no longer yours to see. " +
      "Its tasks stay in its CTID's history.";
    const main = document.querySelector("main");
    if (main) main.prepend(note);
  });

  let following = null;  // the stream URL followed, and its socket
  function refresh() {
    const poller = document.getElementById("ct-live");
    if (poller) htmx.trigger(poller, "vz-refresh");
  }

  function follow() {
    const poller = document.getElementById("ct-live");
    const url = poller && poller.dataset.streamUrl;
    if (following && following.url !== url) {  // the task ended or another holds the container now
      following.socket.close();
      following = null;
    }
    if (!url || following) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    // The WebSocket server: behind the same proxy in production, a port of its own in development.
    const server = poller.dataset.wsPort ? `${location.hostname}:${poller.dataset.wsPort}` : location.host;
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${server}${url}`);
    } catch (error) {
      return;  // the poller asks every second meanwhile
    }
    following = {url: url, socket: socket};
    let status = null;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "state") {
        if (status !== null && message.status !== status) refresh();
        status = message.status;
      } else if (message.type === "end") {
        refresh();
      }
    };
  }

  // A page out of sight does not poll (the poller's trigger says so): once shown again, it asks at once.
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });

  window.vzCtLive = {follow, seen};
  document.addEventListener("htmx:load", follow);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", follow);
  else follow();
})();
