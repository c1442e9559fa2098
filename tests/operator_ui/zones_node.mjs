// Runs the dashboard's grouping of zones under booths and its timeline of splits and
// merges (static/operator_ui/zones.js) under Node: the request is the JSON file named by
// the first argument, the answer is JSON on stdout.
//
// request: {booths: [{name, colour}], cases: {name: [[zone, report], …]}, snapshot: [change, …],
//           events: [[change, seenMs], …], clock: ms}

import { readFileSync } from "node:fs";
import {
  REPARTITIONS_KEPT,
  Repartitions,
  boothOf,
  clockTime,
  hasSpareZones,
  repartitionText,
  zoneGroups,
} from "../../static/operator_ui/zones.js";

const request = JSON.parse(readFileSync(process.argv[2], "utf8"));
const booths = request.booths;
const answer = { kept: REPARTITIONS_KEPT, groups: {} };
for (const [name, entries] of Object.entries(request.cases)) {
  const reports = new Map(entries);
  const groups = zoneGroups(booths, reports);
  answer.groups[name] = {
    booths: groups.booths.map((g) => ({ booth: g.booth, name: g.name, zones: g.zones })),
    spares: groups.spares,
    plain: groups.plain,
    hasSpares: hasSpareZones(booths.length, reports, 0),
    boothOf: entries.map(([zone, report]) => [zone, boothOf(zone, report, booths.length)]),
  };
}
const timeline = new Repartitions();
timeline.reset(request.snapshot);
const lines = () => timeline.entries.map((e) => [clockTime(e.at), repartitionText(e, booths), e.phase]);
answer.afterSnapshot = lines();
answer.afterEvents = [];
for (const [change, seenMs] of request.events) {
  timeline.add(change, seenMs);
  answer.afterEvents.push(lines());
}
answer.clock = clockTime(request.clock);
answer.hasSparesWithChanges = hasSpareZones(booths.length, new Map(), 1);
process.stdout.write(JSON.stringify(answer));
