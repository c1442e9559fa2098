// Live zone table of the landing page, fed by the market's ops events.
// Reconnects with a growing delay when the socket drops, says so on the page, and resumes
// from the last event it got (offset and epoch), so no summary or health report is missed.
"use strict";

(function () {
  const socketPath = document.currentScript.dataset.socketPath;
  const status = document.getElementById("zones-status");
  const body = document.getElementById("zones-body");
  const firstDelayMs = 500;
  const longestDelayMs = 10000;
  let delayMs = firstDelayMs;
  // Each zone worker reports its own zones, and the supervisor the health of zones it
  // restarts or quarantines: keep the newest report of every zone and show them together.
  const zones = new Map();
  let lastTick = 0;
  let position = null; // {offset, epoch} of the last event shown

  function setStatus(text, reconnecting) {
    status.textContent = text;
    status.classList.toggle("reconnecting", reconnecting);
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function renderSummary(summary) {
    summary.zones.forEach(function (zone) {
      zones.set(zone.zone, Object.assign({}, zones.get(zone.zone), zone));
    });
    render(summary.tick);
  }

  function applyHealth(report) {
    report.zones.forEach(function (zone) {
      zones.set(zone, Object.assign({ zone: zone }, zones.get(zone), { health: report.health }));
    });
    render(0);
  }

  function applySnapshot(frame) {
    zones.clear();
    Object.values(frame.state.zones).forEach(function (zone) {
      zones.set(zone.zone, zone);
    });
    position = { offset: frame.offset, epoch: frame.epoch };
    render(frame.state.tick);
  }

  function render(tick) {
    const ordered = Array.from(zones.values()).sort(function (a, b) {
      return a.zone - b.zone;
    });
    const rows = ordered.map(function (zone) {
      const row = document.createElement("tr");
      row.classList.toggle("full", zone.entities >= zone.capacity);
      cell(row, String(zone.zone));
      const booth = cell(row, "");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = zone.colour;
      booth.append(swatch, " ", zone.name || "");
      // a zone reported only by the supervisor (restarting, quarantined) has no figures yet
      cell(row, zone.entities === undefined ? "–" : String(zone.entities));
      cell(row, zone.capacity === undefined ? "–" : String(zone.capacity));
      cell(row, zone.tick_ms === undefined ? "–" : zone.tick_ms.toFixed(2));
      cell(row, zone.migrations_per_s === undefined ? "–" : zone.migrations_per_s.toFixed(1));
      const health = cell(row, zone.health || "ok");
      health.className = "health " + (zone.health || "ok");
      return row;
    });
    body.replaceChildren(...rows);
    // workers tick in step on wall-clock slots: the highest tick reported is the market's
    lastTick = Math.max(lastTick, tick || 0);
    setStatus("Live, tick " + lastTick + ".", false);
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const resume = position ? "?offset=" + position.offset + "&epoch=" + encodeURIComponent(position.epoch) : "";
    const socket = new WebSocket(scheme + "//" + window.location.host + socketPath + resume);

    socket.addEventListener("open", function () {
      delayMs = firstDelayMs;
      setStatus("Connected; waiting for the zones' next summary…", false);
    });

    socket.addEventListener("message", function (event) {
      const frame = JSON.parse(event.data);
      if (frame.type === "snapshot" && (frame.recovered !== true || !position)) {
        applySnapshot(frame);
      } else if (frame.type === "events_reset") {
        applySnapshot({ offset: frame.offset, epoch: frame.epoch, state: frame.snapshot });
      } else if (frame.type === "market_summary" || frame.type === "zone_health") {
        if (position && frame.offset <= position.offset) return; // seen before the reconnect
        position = { offset: frame.offset, epoch: position ? position.epoch : "" };
        if (frame.type === "market_summary") renderSummary(frame);
        else applyHealth(frame);
      }
    });

    socket.addEventListener("close", function () {
      const seconds = (delayMs / 1000).toFixed(1);
      setStatus("Connection lost; reconnecting in " + seconds + " s…", true);
      window.setTimeout(connect, delayMs);
      delayMs = Math.min(delayMs * 2, longestDelayMs);
    });
  }

  connect();
})();
