// Runs the dashboard's NPC code (static/operator_ui/npcs.js, feed.js) under Node: the request is
// the JSON file named by the first argument (a status frame in base64, the ids to look
// up), the answer is JSON on stdout.

import { readFileSync } from "node:fs";
import { parseNpcStatus } from "../../static/operator_ui/feed.js";
import { NpcStatus, legendEntries, npcColour, statusFields } from "../../static/operator_ui/npcs.js";

const request = JSON.parse(readFileSync(process.argv[2], "utf8"));
const bytes = Buffer.from(request.frame, "base64");
const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
const answer = {};
try {
  const frame = parseNpcStatus(buffer);
  const known = new NpcStatus();
  known.update(frame, 1000);
  answer.tickMs = frame.tickMs;
  answer.npcs = Array.from(frame.ids, (id, i) => {
    const status = known.get(id);
    return {
      id: id.toString(),
      status: frame.status[i],
      fields: statusFields(status),
      byState: npcColour(status, "state"),
      byNeed: npcColour(status, "need"),
    };
  });
  answer.counts = known.counts();
  answer.unknown = npcColour(known.get(123456789n), "need");
  known.update({ count: 0, ids: [], status: [] }, 1000 + 11000); // nobody told for 11 s
  answer.forgotten = known.byId.size;
  answer.legend = { state: legendEntries("state"), need: legendEntries("need") };
} catch (error) {
  answer.error = String(error.message);
}
process.stdout.write(JSON.stringify(answer));
