// Runs check.mjs under Node: the request is the JSON file named by the first argument,
// the answer is JSON on stdout.

import { readFileSync } from "node:fs";
import { run } from "./check.mjs";

const request = JSON.parse(readFileSync(process.argv[2], "utf8"));
process.stdout.write(JSON.stringify(run(request)));
