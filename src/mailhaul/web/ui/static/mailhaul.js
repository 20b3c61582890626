/* mailhaul web UI, every page: times in the browser's time zone, and "tick all" on the
   account list. No framework; loaded with `defer` from base.html (the CSP allows no inline
   script).

   Times: the server writes <time datetime="…Z" title="… UTC" data-time="when|relative">
   with UTC text (right without JavaScript). Here a "when" time shows the local date and
   time with its zone (the title keeps the UTC); a "relative" one ("3 min ago", "in 4 min")
   is kept current every 30 s and gets the local time in its title. Content htmx swaps in
   is treated the same. */
(function () {
  "use strict";

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function zoneName(date) {
    try {
      const parts = new Intl.DateTimeFormat("en-US", { timeZoneName: "short" }).formatToParts(date);
      const zone = parts.find(function (part) { return part.type === "timeZoneName"; });
      return zone ? zone.value : "";
    } catch (error) {
      return "";
    }
  }

  function localText(date) {
    const day = date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate());
    const clock = pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
    return (day + " " + clock + " " + zoneName(date)).trim();
  }

  /* The same words as templating.span(): 25 ms, 45 s, 3 min, 2 h 5 min, 3 d. */
  function span(seconds) {
    seconds = Math.abs(seconds);
    if (seconds < 0.0005) return "0 s";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 60) return seconds >= 10 ? Math.round(seconds) + " s" : seconds.toFixed(1) + " s";
    let minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min";
    const hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    if (hours < 48) return minutes ? hours + " h " + minutes + " min" : hours + " h";
    return Math.floor(hours / 24) + " d";
  }

  function relativeText(date) {
    const delta = (date.getTime() - Date.now()) / 1000;
    if (Math.abs(delta) < 1) return "now";
    return delta > 0 ? "in " + span(delta) : span(delta) + " ago";
  }

  function utcTitle(element) {
    if (!element.dataset.utc) element.dataset.utc = element.getAttribute("title") || "";
    return element.dataset.utc;
  }

  function localize(root) {
    const scope = root && root.querySelectorAll ? root : document;
    const found = Array.from(scope.querySelectorAll("time[data-time]"));
    if (scope.matches && scope.matches("time[data-time]")) found.push(scope);
    found.forEach(function (element) {
      const date = new Date(element.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      const utc = utcTitle(element);
      if (element.dataset.time === "when") {
        element.textContent = localText(date);
        element.setAttribute("title", utc);
      } else if (element.dataset.time === "relative") {
        element.textContent = relativeText(date);
        element.setAttribute("title", localText(date) + " (" + utc + ")");
      }
    });
  }

  function syncSelectAll() {
    const all = document.getElementById("select-all");
    if (!all) return;
    const boxes = Array.from(document.querySelectorAll("#account-rows input[name='id']"));
    const ticked = boxes.filter(function (box) { return box.checked; }).length;
    all.checked = boxes.length > 0 && ticked === boxes.length;
    all.indeterminate = ticked > 0 && ticked < boxes.length;
  }

  function setUpSelectAll() {
    const all = document.getElementById("select-all");
    if (!all) return;
    all.hidden = false;
    all.addEventListener("change", function () {
      document.querySelectorAll("#account-rows input[name='id']").forEach(function (box) {
        box.checked = all.checked;
      });
    });
    document.addEventListener("change", function (event) {
      if (event.target instanceof Element && event.target.matches("#account-rows input[name='id']")) {
        syncSelectAll();
      }
    });
    syncSelectAll();
  }

  localize(document);
  setUpSelectAll();
  document.addEventListener("htmx:load", function (event) {
    localize(event.target);
    syncSelectAll();
  });
  window.setInterval(function () {
    document.querySelectorAll("time[data-time='relative']").forEach(function (element) {
      const date = new Date(element.getAttribute("datetime"));
      if (!isNaN(date.getTime())) element.textContent = relativeText(date);
    });
  }, 30000);
})();
