// Zones inside booths, and the splits and merges between them (docs/dashboard.md).
//
// A market may run spare zones beside its booths' own: a crowded zone splits its range
// with a spare, which then serves part of that booth, and the spare's part merges back once
// the crowd leaves. Each zone's summary says which booth it serves (`booth`, -1 for a
// spare serving nothing); the page groups the zones under their booths from it, and lists
// the `zones_repartitioned` events as a timeline. Nothing here touches the page's elements
// but RepartitionPanel, so the grouping and the timeline run under Node as well.

export const SPARE = -1;
export const SPARE_COLOUR = "#8a8f98";
export const REPARTITIONS_KEPT = 25; // changes: the server keeps 50 events, planned and done

// The booth zone `zone` serves by its newest report: the report's `booth` when it says,
// else the booth of the same number (a booth's own zone before its first summary), else
// none, a spare.
export function boothOf(zone, report, boothCount) {
  const booth = report && Number.isInteger(report.booth) ? report.booth : zone < boothCount ? zone : SPARE;
  return booth >= 0 && booth < boothCount ? booth : SPARE;
}

// Every zone the page knows of (each booth's own, and any that reported), grouped under
// the booth it serves. `booths` is the hello's layout.booths, `reports` a Map zone → newest
// report. → {booths: [{booth, name, colour, zones: [zone, …]}], spares: [zone, …], plain}
// where `plain` means one zone per booth, each its booth's own, and no spare: the table of
// a market without spare zones.
export function zoneGroups(booths, reports) {
  const known = new Set(booths.map((_, booth) => booth));
  reports.forEach((_, zone) => known.add(Number(zone)));
  const groups = booths.map((booth, i) => ({ booth: i, name: booth.name, colour: booth.colour, zones: [] }));
  const spares = [];
  Array.from(known)
    .sort((a, b) => a - b)
    .forEach((zone) => {
      const booth = boothOf(zone, reports.get(zone), booths.length);
      if (booth === SPARE) spares.push(zone);
      else groups[booth].zones.push(zone);
    });
  const plain = spares.length === 0 && groups.every((g) => g.zones.length === 1 && g.zones[0] === g.booth);
  return { booths: groups, spares: spares, plain: plain };
}

// Whether the market runs spare zones: a zone numbered after the booths' or serving none
// has reported, or a split or merge is known.
export function hasSpareZones(boothCount, reports, repartitionCount) {
  if (repartitionCount > 0) return true;
  for (const [zone, report] of reports) {
    if (Number(zone) >= boothCount || (report && report.booth === SPARE)) return true;
  }
  return false;
}

function sameChange(entry, change) {
  return (
    entry.kind === change.kind &&
    entry.version === change.version &&
    entry.source === change.source &&
    entry.target === change.target
  );
}

// The splits and merges the page knows of, newest first: one entry per change, its
// "planned" event later marked done by the "done" one. `at` is when the change was planned:
// by the planner's clock (`at_ms` of the plan, or of its end less the handoff's length),
// or, for an event without one, by the page's clock when it heard it; null when neither.
export class Repartitions {
  constructor() {
    this.entries = [];
  }

  // The snapshot's `state.repartitions`, oldest first: the list starts over from it.
  reset(changes) {
    this.entries = [];
    changes.forEach((change) => this.add(change, null));
  }

  // One `zones_repartitioned` payload, heard at `seenMs` (null: from a snapshot).
  add(change, heardMs) {
    const tookS = typeof change.took_s === "number" ? change.took_s : null;
    const seenMs = typeof change.at_ms === "number" && change.at_ms > 0 ? change.at_ms : heardMs;
    let entry = this.entries.find((e) => sameChange(e, change));
    if (!entry) {
      entry = {
        kind: change.kind,
        version: change.version,
        source: change.source,
        target: change.target,
        booth: change.booth,
        lo: change.lo,
        hi: change.hi,
        phase: "planned",
        tookS: null,
        at: null,
      };
      this.entries.unshift(entry);
      this.entries.splice(REPARTITIONS_KEPT);
    }
    if (change.phase === "done") {
      entry.phase = "done";
      entry.tookS = tookS;
      if (entry.at === null && seenMs !== null) entry.at = seenMs - (tookS || 0) * 1000;
    } else if (entry.at === null && seenMs !== null) {
      entry.at = seenMs;
    }
    return entry;
  }
}

function two(n) {
  return String(n).padStart(2, "0");
}

// "12:03:05" by the page's clock; "earlier" for a change the snapshot held.
export function clockTime(ms) {
  if (ms === null) return "earlier";
  const d = new Date(ms);
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

// What the timeline says of `entry`, without its time: "split — booth Looms: zone 0 → zone 2,
// done in 1.0 s". `booths` is the hello's layout.booths.
export function repartitionText(entry, booths) {
  const booth = booths[entry.booth];
  const where = booth ? `booth ${booth.name}` : `booth ${entry.booth}`;
  let state = "under way";
  if (entry.phase === "done") state = entry.tookS === null ? "done" : `done in ${entry.tookS.toFixed(1)} s`;
  return `${entry.kind} — ${where}: zone ${entry.source} → zone ${entry.target}, ${state}`;
}

// The timeline in the panel: shown while the market has spare zones, hidden otherwise;
// "No splits or merges yet." until the first one.
export class RepartitionPanel {
  constructor(elements) {
    this.section = elements.section;
    this.list = elements.list;
    this.none = elements.none;
    this.model = new Repartitions();
  }

  reset(changes) {
    this.model.reset(changes);
  }

  add(change, seenMs) {
    this.model.add(change, seenMs);
  }

  render(booths, spares) {
    const entries = this.model.entries;
    this.section.hidden = !spares && entries.length === 0;
    this.none.hidden = entries.length > 0;
    this.list.replaceChildren(
      ...entries.map((entry) => {
        const item = document.createElement("li");
        item.dataset.kind = entry.kind;
        item.dataset.phase = entry.phase;
        item.dataset.version = String(entry.version);
        const time = document.createElement("time");
        time.textContent = clockTime(entry.at);
        if (entry.at === null) time.title = "before this page opened";
        else time.dateTime = new Date(entry.at).toISOString();
        item.append(time, " ", repartitionText(entry, booths));
        return item;
      }),
    );
  }
}
