// On every page: the colour scheme, the folding menu, and keyboard access to tables that scroll sideways.
// Loaded in <head> without defer so the theme is set before the first paint (no white flash in dark mode).
(function () {
  "use strict";
  var KEY = "vzpanel-theme";          // "light", "dark", or absent: follow the system
  var ORDER = ["auto", "dark", "light"];
  var system = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function chosen() {
    try { return localStorage.getItem(KEY) || "auto"; } catch (e) { return "auto"; }  // storage may be disabled
  }
  function apply() {
    var choice = chosen();
    var dark = choice === "dark" || (choice === "auto" && system && system.matches);
    document.documentElement.setAttribute("data-bs-theme", dark ? "dark" : "light");
    document.querySelectorAll("[data-theme-name]").forEach(function (el) { el.textContent = choice; });
  }
  apply();
  if (system && system.addEventListener) system.addEventListener("change", apply);

  // A table wider than a phone scrolls inside its own box (panel.css); a keyboard user must be able to
  // reach and scroll it too, so such a box becomes a focusable, named region. Run again after htmx swaps.
  function markScrollableTables(root) {
    (root || document).querySelectorAll("main table").forEach(function (table) {
      var scrolls = table.scrollWidth > table.clientWidth + 1;
      if (scrolls && !table.hasAttribute("tabindex")) {
        table.setAttribute("tabindex", "0");
        table.setAttribute("role", "region");
        var caption = table.querySelector("caption");
        table.setAttribute("aria-label", caption ? caption.textContent.trim() : "Table (scrolls sideways)");
        table.setAttribute("data-scroll-region", "");
      } else if (!scrolls && table.hasAttribute("data-scroll-region")) {
        ["tabindex", "role", "aria-label", "data-scroll-region"].forEach(function (a) { table.removeAttribute(a); });
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    apply();
    markScrollableTables();
    window.addEventListener("resize", function () { markScrollableTables(); });
    document.body.addEventListener("htmx:afterSettle", function () { markScrollableTables(); });
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      button.addEventListener("click", function () {
        var next = ORDER[(ORDER.indexOf(chosen()) + 1) % ORDER.length];
        try { if (next === "auto") localStorage.removeItem(KEY); else localStorage.setItem(KEY, next); } catch (e) { /* keeps the page's state */ }
        apply();
      });
    });
    // Bootstrap's collapse without Bootstrap's JavaScript: the menu button shows and hides the links.
    document.querySelectorAll("[data-menu-toggle]").forEach(function (button) {
      var menu = document.getElementById(button.getAttribute("aria-controls"));
      if (!menu) return;
      button.addEventListener("click", function () {
        var open = menu.classList.toggle("show");
        button.setAttribute("aria-expanded", open ? "true" : "false");
      });
    });
  });
})();
