// Runs the dashboard's bans list (NpcPanel in static/operator_ui/npcs.js) under Node, with
// just enough of a document for it to render into: the request is the JSON file named by
// the first argument ({snapshot: [...bans], events: [...bans]}), the answer is JSON on
// stdout: the bans the panel keeps and the lines it shows, after the snapshot and after
// the events.

import { readFileSync } from "node:fs";
import { BANS_KEPT, NpcPanel } from "../../static/operator_ui/npcs.js";

globalThis.document = { createElement: (tag) => ({ tag: tag, textContent: "" }) };

const request = JSON.parse(readFileSync(process.argv[2], "utf8"));
const shown = { lines: [] };
const elements = {
  bans: { replaceChildren: (...items) => (shown.lines = items.map((item) => item.textContent)) },
  bansNone: { hidden: false },
};
const panel = new NpcPanel(elements);
panel.setBans(request.snapshot);
const afterSnapshot = { kept: panel.bans.map((ban) => ban.contributor), shown: shown.lines };
for (const ban of request.events) panel.ban(ban);
const answer = {
  bansKept: BANS_KEPT,
  afterSnapshot: afterSnapshot,
  kept: panel.bans.map((ban) => ban.contributor),
  shown: shown.lines,
  noneHidden: elements.bansNone.hidden,
};
process.stdout.write(JSON.stringify(answer));
