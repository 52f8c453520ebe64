// Runs the JavaScript snippets of the README and docs/gateway.md as a user
// would paste them into a file of their own: each ```js block is written
// to a .js file as it is, but for the gateway's address (the docs say
// 127.0.0.1:8090; the test's gateway listens on a free port), and run by
// node with LOCAL_KEY set to a key of the gateway. Each must exit 0 and
// print a token. A snippet that is not a runnable program (a top-level
// await beside require, a name it never defines) fails here.
//
// Run by .ci/npm-clients.sh once the driver is done with the gateway:
//   GATEWAY_URL  the gateway's base URL; GATEWAY_KEY a local key of it
//   NODE_PATH    where the clients are installed
//   DOCS         the markdown files to read, space-separated
//   WORK         a directory to write the snippets into
"use strict";

const fs = require("fs");
const path = require("path");
const { execFileSync } = require("child_process");

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`snippets: ${name} is not set`);
    process.exit(2);
  }
  return v;
};
const GATEWAY = env("GATEWAY_URL");
const KEY = env("GATEWAY_KEY");
const WORK = env("WORK");
const DOCS = env("DOCS").split(" ").filter(Boolean);
const DOC_ADDR = "http://127.0.0.1:8090";

let failed = 0;
let ran = 0;
for (const doc of DOCS) {
  const text = fs.readFileSync(doc, "utf8");
  const blocks = [...text.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  if (blocks.length === 0) {
    console.log(`FAIL ${doc}: no js snippet (this check expects one)`);
    failed++;
    continue;
  }
  blocks.forEach((code, i) => {
    const name = `${doc}#js${i + 1}`;
    if (!code.includes(DOC_ADDR)) {
      console.log(`FAIL ${name}: does not name the gateway at ${DOC_ADDR}, as the command beside it starts it`);
      failed++;
      return;
    }
    const file = path.join(WORK, `snippet-${path.basename(doc, ".md")}-${i + 1}.js`);
    fs.writeFileSync(file, code.split(DOC_ADDR).join(GATEWAY));
    ran++;
    try {
      const out = execFileSync(process.execPath, [file], {
        env: { ...process.env, LOCAL_KEY: KEY },
        timeout: 60000,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      }).trim();
      if (!/^\S{10,}$/.test(out)) {
        console.log(`FAIL ${name}: printed ${JSON.stringify(out)}, not a token`);
        failed++;
        return;
      }
      console.log(`ok   ${name} — ${out.slice(0, 40)}`);
    } catch (err) {
      console.log(`FAIL ${name}: ${(err.stderr || err.message || String(err)).trim().split("\n").slice(0, 6).join("\n     ")}`);
      failed++;
    }
  });
}
console.log(`\n${ran} snippets run, ${failed} failed`);
process.exit(failed ? 1 : 0);
