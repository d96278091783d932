/* A task's log, live (tasks/_live.html): the log's new text appended as the agent writes it, from a
 * WebSocket to tasks/consumers.py; the fragment fetched again when the task's status changes or
 * it ends (badge, result, error). Without the WebSocket the fragment is fetched every second.
 * Runs again on every page htmx swaps in (a boosted form leads here), so it defines itself once.
 */
(function () {
  "use strict";
  if (window.vzTaskLog) { window.vzTaskLog.scan(); return; }
  const POLL_MS = 1000;

  function refresh(box) {
    if (box.isConnected) htmx.ajax("GET", box.dataset.fragmentUrl, {target: box, swap: "outerHTML"});
  }

  function poll(box) {
    setTimeout(() => refresh(box), POLL_MS);
  }

  function showProgress(box, percent) {
    const bar = box.querySelector(".progress");
    if (!bar) return;
    bar.setAttribute("aria-valuenow", percent);
    const inner = bar.querySelector(".progress-bar");
    inner.style.width = `${percent}%`;
    inner.textContent = `${percent}%`;
  }

  function follow(box) {
    if (box.dataset.following || !box.dataset.streamUrl) return;
    box.dataset.following = "1";
    const log = box.querySelector("#task-log");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    // The WebSocket server: behind the same proxy in production, a port of its own in development.
    const server = box.dataset.wsPort ? `${location.hostname}:${box.dataset.wsPort}` : location.host;
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${server}${box.dataset.streamUrl}`);
    } catch (error) {
      return poll(box);
    }
    let status = null;
    let ended = false;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "log") {
        const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 20;
        log.append(message.text);
        if (atBottom) log.scrollTop = log.scrollHeight;
      } else if (message.type === "state") {
        if (status !== null && message.status !== status) {
          ended = true;  // the fragment again, with a new socket from where its log ends
          socket.close();
          return refresh(box);
        }
        status = message.status;
        showProgress(box, message.progress);
      } else if (message.type === "end") {
        ended = true;
        refresh(box);
      }
    };
    socket.onclose = () => { if (!ended) poll(box); };
    box.dataset.live = "stream";
  }

  function scan() {
    document.querySelectorAll("#task-live").forEach(follow);
  }

  window.vzTaskLog = {scan};
  document.addEventListener("htmx:load", scan);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan);
  else scan();
})();
