/* The Console tab: xterm.js (static/vendor/xterm.js) on a WebSocket to consoles/consumers.py.
 *
 * Each connection spends a one-time ticket, asked for with a POST. Keystrokes go as binary
 * frames, resizes as JSON text frames; the server's "closed" message ends the session for good
 * (its reason is shown), a connection that drops without it was a network blip: a new ticket is
 * asked for and a new session opened, a few times, then a Reconnect button is shown.
 * The tab's live part (containers/live.py) brings #console in when the container starts and takes it
 * away when it stops, without a reload: a terminal is started for each #console that appears.
 */
(function () {
  "use strict";
  if (window.vzConsoleScan) { window.vzConsoleScan(); return; }

  function scan() {
    const box = document.getElementById("console");
    if (box && window.Terminal && !box.dataset.started) {
      box.dataset.started = "1";
      start(box);
    }
  }
  window.vzConsoleScan = scan;
  document.addEventListener("htmx:load", scan);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan);
  else scan();

  function start(box) {
    const statusLine = document.getElementById("console-status");
    const reconnectButton = document.getElementById("console-reconnect");
    const encoder = new TextEncoder();
    const MAX_RETRIES = 5;

    const TerminalClass = window.Terminal.Terminal || window.Terminal;
    const term = new TerminalClass({cursorBlink: true, scrollback: 5000, fontSize: 14,
                                    fontFamily: "ui-monospace, 'DejaVu Sans Mono', monospace"});
    const fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(box);
    fit.fit();

    let socket = null;
    let mode = "shell";
    let retries = 0;

    function status(text) { statusLine.textContent = text; }

    function sendSize() {
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({type: "resize", cols: term.cols, rows: term.rows}));
      }
    }

    async function connect() {
      reconnectButton.classList.add("d-none");
      status("Connecting…");
      let answer;
      try {
        const response = await fetch(box.dataset.ticketUrl, {
          method: "POST", credentials: "same-origin",
          headers: {"X-CSRFToken": box.dataset.csrf}, body: new URLSearchParams({mode: mode}),
        });
        answer = await response.json().catch(() => ({error: `HTTP ${response.status}`}));
        if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
      } catch (error) {
        return lost(String(error.message || error));
      }
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      // The WebSocket server: behind the same proxy in production, a port of its own in development.
      const server = box.dataset.wsPort ? `${location.hostname}:${box.dataset.wsPort}` : location.host;
      const ws = new WebSocket(`${scheme}//${server}${answer.url}`);
      ws.binaryType = "arraybuffer";
      ws.finished = false;
      socket = ws;
      ws.onopen = sendSize;
      ws.onmessage = (event) => {
        if (typeof event.data !== "string") {
          term.write(new Uint8Array(event.data));
          return;
        }
        const message = JSON.parse(event.data);
        if (message.type === "opened") {
          retries = 0;
          status(`Connected (${mode}).`);
          sendSize();
          term.focus();
        } else if (message.type === "closed") {
          ws.finished = true;
          status(`Closed: ${message.reason}.`);
          reconnectButton.classList.remove("d-none");
        }
      };
      ws.onclose = () => {
        if (socket !== ws || ws.finished || !box.isConnected) return;
        lost("the connection dropped");
      };
    }

    function lost(why) {
      if (!box.isConnected) return;  // the part went (the container stopped): nothing to reconnect
      retries += 1;
      if (retries > MAX_RETRIES) {
        status(`Not connected: ${why}.`);
        reconnectButton.classList.remove("d-none");
        return;
      }
      status(`Not connected (${why}): trying again…`);
      setTimeout(connect, Math.min(500 * 2 ** retries, 10000));
    }

    function restart() {
      if (socket) {
        socket.finished = true;
        socket.close();
      }
      retries = 0;
      term.reset();
      connect();
    }

    term.onData((data) => {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
    });
    term.onResize(sendSize);
    window.addEventListener("resize", () => { if (box.isConnected) fit.fit(); });
    new ResizeObserver(() => fit.fit()).observe(box);
    reconnectButton.addEventListener("click", restart);
    document.getElementById("console-fullscreen").addEventListener("click", () => box.requestFullscreen());
    document.querySelectorAll("input[name=console-mode]").forEach((input) => input.addEventListener("change", () => {
      mode = input.value;
      restart();
    }));
    // For the tests (and the curious at the browser's console): the terminal, its socket, its text.
    window.vzConsole = {term: term, socket: () => socket, text: () => {
      const buffer = term.buffer.active;
      const lines = [];
      for (let i = 0; i < buffer.length; i += 1) lines.push(buffer.getLine(i).translateToString(true));
      return lines.join("\n");
    }};
    connect();
  }
})();
