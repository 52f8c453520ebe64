// Drives the two npm clients of the provider's API — the official
// @2captcha/captcha-solver and the community 2captcha package — against
// `captchafsm simulate` and `captchafsm gateway`, unchanged but for their
// base URL (a subclass overriding their `in` and `res` getters). Every
// method each client offers is called and must return an answer; the error
// codes must surface through the clients' own error handling (their
// APIError).
//
// Run by .ci/npm-clients.sh, which installs the clients into a temporary
// directory (NODE_PATH) and starts the servers. MODE=simulator (the
// default) drives the simulators:
//   CLEAN_URL       no errors: every method must solve
//   BUSY_URL        every submit answered ERROR_NO_SLOT_AVAILABLE
//   EMPTY_URL       --balance 0: ERROR_ZERO_BALANCE
//   UNSOLVABLE_URL  every task ends ERROR_CAPTCHA_UNSOLVABLE
//   KEY, OTHER_KEY  a key the simulators know, and one they do not
//   POLL_MS         the clients' polling frequency
// MODE=gateway drives a gateway in front of a simulator whose mix answers
// NO_SLOT and UNSOLVABLE often: every method must still return a token,
// and solves in flight across a SIGKILL and restart of the gateway too:
//   GATEWAY_URL     the gateway's base URL; GATEWAY_KEY a local key of it
//   GATEWAY_PID     the running gateway's process id
//   GATEWAY_CMD     a JSON array: the command that starts it again on the
//                   same address (it prints its URL on its first line)
//   GATEWAY_PIDFILE where the driver writes the restarted gateway's pid
//   OTHER_KEY, POLL_MS as above
// Exits 1 on any failure, after printing every one.
"use strict";

const http = require("http");
const fs = require("fs");
const diagnostics = require("diagnostics_channel");
const { spawn } = require("child_process");
const official = require("@2captcha/captcha-solver");
const community = require("2captcha");

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`driver: ${name} is not set`);
    process.exit(2);
  }
  return v;
};
const MODE = process.env.MODE || "simulator";
const GATEWAY = MODE === "gateway";
const CLEAN = GATEWAY ? "" : env("CLEAN_URL");
const BUSY = GATEWAY ? "" : env("BUSY_URL");
const EMPTY = GATEWAY ? "" : env("EMPTY_URL");
const UNSOLVABLE = GATEWAY ? "" : env("UNSOLVABLE_URL");
const KEY = GATEWAY ? env("GATEWAY_KEY") : env("KEY");
const OTHER_KEY = env("OTHER_KEY");
const POLL_MS = Number(process.env.POLL_MS || "250");

// Only the base URL changes: the clients build every request themselves.
function officialAt(base, key = KEY, pollMS = POLL_MS) {
  class Local extends official.Solver {
    get in() { return base + "/in.php"; }
    get res() { return base + "/res.php"; }
  }
  return new Local(key, pollMS);
}
function communityAt(base, key = KEY, pollMS = POLL_MS) {
  class Local extends community.Solver {
    get in() { return base + "/in.php"; }
    get res() { return base + "/res.php"; }
  }
  return new Local(key, pollMS);
}

// A PNG signature and filler: the simulator checks the signature and the
// size (100 bytes to 100 kB), as the provider's first checks do.
const png = Buffer.concat([Buffer.from("89504e470d0a1a0a", "hex"), Buffer.alloc(400, 0x42)]).toString("base64");
const png2 = Buffer.concat([Buffer.from("89504e470d0a1a0a", "hex"), Buffer.alloc(400, 0x43)]).toString("base64");
const page = "https://example.com/login";
const hex32 = "e392e1d7fd421dc63325744d5a2b9c73";
const ua = "Mozilla/5.0 (X11; Linux x86_64)";
const proxy = { proxy: "user:pass@127.0.0.1:3128", proxytype: "HTTP" };

// Every method of the official client, with the parameters its own checks
// require (utils/checkCaptchaParams.js).
const officialCalls = {
  recaptcha: (s) => s.recaptcha({ pageurl: page, googlekey: "6LfD3PIbAAAAAJs_eEHvoOl75_83eXSqpPSRFJ_u" }),
  hcaptcha: (s) => s.hcaptcha({ pageurl: page, sitekey: "b76cd927-d266-4cfb-a328-3b03ae07ded6" }),
  geetest: (s) => s.geetest({ pageurl: page, gt: "f2ae6cadcf7886856696502e1d55e00c", challenge: "12345678abc90123d45678ef90123a456b" }),
  geetestV4: (s) => s.geetestV4({ pageurl: page, captcha_id: hex32 }),
  yandexSmart: (s) => s.yandexSmart({ pageurl: page, sitekey: "FEXfAbHQsToo97VidNVk3j4dC74nGW1DgdxjtNB9" }),
  imageCaptcha: (s) => s.imageCaptcha({ body: png, numeric: 4, min_len: 5, max_len: 5 }),
  funCaptcha: (s) => s.funCaptcha({ pageurl: page, publickey: "804380F4-6844-FFA1-ED4E-5877CA1F1EA4" }),
  lemin: (s) => s.lemin({ pageurl: page, div_id: "lemin-cropped-captcha", captcha_id: "CROPPED_3dfdd5c_d1872b526b794d83ba3b365eb15a200b" }),
  amazonWaf: (s) => s.amazonWaf({ pageurl: page, sitekey: "AQIDAHjcYu/GjX+QlghicBg", iv: "CgAHbCe2GgAAAAAj", context: "9BUgmlm48F92WUoqv97a49ZuEJJ50TCk9MVr3C7WMtQ0" }),
  cloudflareTurnstile: (s) => s.cloudflareTurnstile({ pageurl: page, sitekey: "0x4AAAAAAAChNiVJM_WtShFf" }),
  coordinates: (s) => s.coordinates({ body: png, textinstructions: "click the cats" }),
  capyPuzzle: (s) => s.capyPuzzle({ pageurl: page, captchakey: "PUZZLE_Cme4hZLjuZRMYC3uh14C52D3uNms5w" }),
  dataDome: (s) => s.dataDome({ pageurl: page, captcha_url: "https://geo.captcha-delivery.com/captcha/?initialCid=x", userAgent: ua, ...proxy }),
  cyberSiARA: (s) => s.cyberSiARA({ pageurl: page, master_url_id: "tpjOCKjjpdzv3d8Ub2E9COEWKt1vl1Mv", userAgent: ua }),
  mtCaptcha: (s) => s.mtCaptcha({ pageurl: page, sitekey: "MTPublic-KzqLY1cKH" }),
  cutCaptcha: (s) => s.cutCaptcha({ pageurl: page, miseryKey: "a1488b66da00bf332a1488993a5443c79047e752", apiKey: "SAb83IIB" }),
  friendlyCaptcha: (s) => s.friendlyCaptcha({ pageurl: page, sitekey: "FCMST5VUMCBOCGQ9" }),
  boundingBox: (s) => s.boundingBox({ image: png, textinstructions: "Circle every car" }),
  grid: (s) => s.grid({ body: png, textinstructions: "Select cars", rows: 3, cols: 3 }),
  text: (s) => s.text({ textcaptcha: "If tomorrow is Saturday, what day is today?", lang: "en" }),
  canvas: (s) => s.canvas({ body: png, textinstructions: "Draw around the apple" }),
  rotate: (s) => s.rotate({ body: png, angle: 15 }),
  keyCaptcha: (s) => s.keyCaptcha({ pageurl: page, userId: 184015, sessionId: "9ff29e0176e78eb7ba59314f92dbac1b", webServerSign: "964635241a3e5e76980f2572e5f63452", webServerSign2: "3ca802a38ffc5831fa293ac2819b1204" }),
  tencent: (s) => s.tencent({ pageurl: page, appId: "2092215077" }),
  atbCaptcha: (s) => s.atbCaptcha({ pageurl: page, appId: "af25e409b33d722a95e56a230ff8771c", apiServer: "https://cap.aisecurius.com" }),
  prosopo: (s) => s.prosopo({ pageurl: page, sitekey: "5EZVvsHMrKCFKp5NYNoTyDjTjetoVo1Z4UNNbTwJf1GfN6Xm" }),
  captchaFox: (s) => s.captchaFox({ pageurl: page, sitekey: "sk_ILKWNruBBVKDOM7dZs59KHnDLEWiH", userAgent: ua, ...proxy }),
  vkimage: (s) => s.vkimage({ body: png, steps: "[5,19,14,14,6,4,8,9]" }),
  vkcaptcha: (s) => s.vkcaptcha({ redirect_uri: "https://id.vk.com/not_robot_captcha?domain=vk.com", userAgent: ua, ...proxy }),
  temu: (s) => s.temu({ body: png, part1: png, part2: png, part3: png }),
  altcha: (s) => s.altcha({ pageurl: page, challengeUrl: "https://example.com/altcha/challenge" }),
  binance: (s) => s.binance({ pageurl: page, sitekey: "login", validateId: "cb0bfefa598b4a5c85bd6fb3df4b6bd1" }),
  audio: (s) => s.audio({ body: png, lang: "en" }),
  yidun: (s) => s.yidun({ pageurl: page, sitekey: "eaf7cbcbf7b0432c83b4c1f25dc4e2fc" }),
  alibaba: (s) => s.alibaba({ pageurl: page, sceneId: "1xtxt9b1", prefix: "1xtxt9" }),
  tspd: (s) => s.tspd({ pageurl: page, tspdCookie: "TS0105=abc", htmlPageBase64: Buffer.from("<html></html>").toString("base64"), ...proxy }),
  basilisk: (s) => s.basilisk({ pageurl: page, sitekey: "b7890hre5cf2544b2759c19fb2600897" }),
  hunt: (s) => s.hunt({ pageurl: page, apiGetLib: "https://example.com/hunt/api.js" }),
  dragAndDrop: (s) => s.dragAndDrop({ body: png, images: [png, png], textinstructions: "Drag the pieces" }),
};

// Every method of the community client.
const communityCalls = {
  recaptcha: (s) => s.recaptcha("6LfD3PIbAAAAAJs_eEHvoOl75_83eXSqpPSRFJ_u", page),
  hcaptcha: (s) => s.hcaptcha("b76cd927-d266-4cfb-a328-3b03ae07ded6", page),
  geetest: (s) => s.geetest("f2ae6cadcf7886856696502e1d55e00c", "12345678abc90123d45678ef90123a456b", page),
  imageCaptcha: (s) => s.imageCaptcha(png),
  funCaptcha: (s) => s.funCaptcha("804380F4-6844-FFA1-ED4E-5877CA1F1EA4", page, "https://client-api.arkoselabs.com"),
  turnstile: (s) => s.turnstile("0x4AAAAAAAChNiVJM_WtShFf", page),
};

const failures = [];
const done = [];
function fail(what, why) {
  failures.push(`${what}: ${why}`);
  console.log(`FAIL ${what}: ${why}`);
}
function ok(what, detail) {
  done.push(what);
  console.log(`ok   ${what}${detail ? " — " + detail : ""}`);
}

// check fails when a client gained a method the table does not drive:
// "every method the clients offer" stays true when a version changes.
function checkCoverage(name, Solver, calls, others) {
  const methods = Object.getOwnPropertyNames(Solver.prototype).filter((m) => {
    const d = Object.getOwnPropertyDescriptor(Solver.prototype, m);
    return m !== "constructor" && typeof d.value === "function";
  });
  for (const m of methods) {
    if (!(m in calls) && !others.includes(m)) fail(`${name}.${m}`, "a method of the client the driver does not call");
  }
  return methods.length;
}

function answerText(res) {
  return typeof res.data === "string" ? res.data : JSON.stringify(res.data);
}

async function solveAll(name, solver, calls, width = 6) {
  const ids = [];
  const entries = Object.entries(calls);
  let next = 0;
  async function worker() {
    while (next < entries.length) {
      const [method, call] = entries[next++];
      const what = `${name}.${method}`;
      const t0 = Date.now();
      try {
        const res = await call(solver);
        if (!res || res.data === undefined || res.data === "" || !/^\d+$/.test(String(res.id))) {
          fail(what, `no answer: ${JSON.stringify(res)}`);
          continue;
        }
        if (method.startsWith("geetest") && typeof res.data !== "object") {
          fail(what, `GeeTest's answer is not an object of fields: ${answerText(res)}`);
          continue;
        }
        if (method === "geetest" && !(res.data.geetest_challenge && res.data.geetest_validate && res.data.geetest_seccode)) {
          fail(what, `GeeTest v3 fields missing: ${answerText(res)}`);
          continue;
        }
        if (method === "geetestV4" && !(res.data.captcha_id && res.data.lot_number && res.data.pass_token && res.data.gen_time && res.data.captcha_output)) {
          fail(what, `GeeTest v4 fields missing: ${answerText(res)}`);
          continue;
        }
        ids.push(res.id);
        ok(what, `${answerText(res).slice(0, 40)} (${Date.now() - t0} ms)`);
      } catch (e) {
        fail(what, `${e && e.name}: ${e && (e.err || e.message)}`);
      }
    }
  }
  await Promise.all(Array.from({ length: width }, worker));
  return ids;
}

// expectAPIError runs call and requires the client's own APIError with
// code, recognised by the client (its numeric code is not the "unexpected"
// 0).
async function expectAPIError(what, Client, call, code) {
  try {
    const res = await call();
    fail(what, `wanted ${code}, got an answer: ${JSON.stringify(res)}`);
  } catch (e) {
    if (!(e instanceof Client.APIError)) return fail(what, `not the client's APIError: ${e}`);
    if (e.err !== code) return fail(what, `APIError ${e.err}, want ${code}`);
    if (!e.code) return fail(what, `the client did not recognise ${code}`);
    ok(what, `APIError ${e.err} (client code ${e.code}): ${e.message}`);
  }
}

function request(method, url, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function main() {
  const t0 = Date.now();
  const nOfficial = checkCoverage("official", official.Solver, officialCalls, ["balance", "pollResponse", "goodReport", "badReport"]);
  const nCommunity = checkCoverage("community", community.Solver, communityCalls, ["balance", "pollResponse", "goodReport", "report"]);

  // Every solving method, on the clean simulator.
  const off = officialAt(CLEAN);
  const com = communityAt(CLEAN);
  const [offIDs, comIDs] = await Promise.all([solveAll("official", off, officialCalls), solveAll("community", com, communityCalls)]);

  // Balance and reports.
  for (const [name, s] of [["official", off], ["community", com]]) {
    try {
      const b = await s.balance();
      if (typeof b !== "number" || !(b > 0) || b >= 100) fail(`${name}.balance`, `balance ${b}: want a number below 100 once tasks are charged`);
      else ok(`${name}.balance`, String(b));
    } catch (e) {
      fail(`${name}.balance`, String(e && (e.err || e.message)));
    }
  }
  try {
    ok("official.goodReport", await off.goodReport(offIDs[0]));
    ok("official.badReport", await off.badReport(offIDs[1]));
    ok("official.badReport again", await off.badReport(offIDs[1])); // the client accepts ERROR_DUPLICATE_REPORT
    await com.goodReport(comIDs[0]);
    ok("community.goodReport");
    await com.report(comIDs[1]);
    ok("community.report");
  } catch (e) {
    fail("reports", `${e && e.name}: ${e && (e.err || e.message)}`);
  }
  await expectAPIError("community.report twice", community, () => com.report(comIDs[1]), "ERROR_DUPLICATE_REPORT");
  await expectAPIError("official.goodReport unknown id", official, () => off.goodReport("1"), "ERROR_WRONG_CAPTCHA_ID");

  // The error codes, through the clients' own error handling.
  const recaptcha = { pageurl: page, googlekey: "6LfD3PIbAAAAAJs_eEHvoOl75_83eXSqpPSRFJ_u" };
  await expectAPIError("official NO_SLOT", official, () => officialAt(BUSY).recaptcha(recaptcha), "ERROR_NO_SLOT_AVAILABLE");
  await expectAPIError("community NO_SLOT", community, () => communityAt(BUSY).hcaptcha("k", page), "ERROR_NO_SLOT_AVAILABLE");
  await expectAPIError("official ZERO_BALANCE", official, () => officialAt(EMPTY).imageCaptcha({ body: png }), "ERROR_ZERO_BALANCE");
  await expectAPIError("community ZERO_BALANCE", community, () => communityAt(EMPTY).imageCaptcha(png), "ERROR_ZERO_BALANCE");
  await expectAPIError("official UNSOLVABLE", official, () => officialAt(UNSOLVABLE).hcaptcha({ pageurl: page, sitekey: "k" }), "ERROR_CAPTCHA_UNSOLVABLE");
  await expectAPIError("community UNSOLVABLE", community, () => communityAt(UNSOLVABLE).turnstile("0x4AAAAAAAChNiVJM_WtShFf", page), "ERROR_CAPTCHA_UNSOLVABLE");
  await expectAPIError("official unknown key", official, () => officialAt(CLEAN, OTHER_KEY).recaptcha(recaptcha), "ERROR_KEY_DOES_NOT_EXIST");
  await expectAPIError("community unknown key", community, () => communityAt(CLEAN, OTHER_KEY).recaptcha("6Le", page), "ERROR_KEY_DOES_NOT_EXIST");
  try {
    const b = await officialAt(EMPTY).balance();
    if (b !== 0) fail("official balance of an empty account", `got ${b}, want 0`);
    else ok("official balance of an empty account", "0");
  } catch (e) {
    fail("official balance of an empty account", String(e && (e.err || e.message)));
  }

  // Browser clients: header_acao=1 and the CORS preflight.
  const pre = await request("OPTIONS", CLEAN + "/in.php", {
    Origin: "https://bot.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type",
  });
  if (pre.status !== 204 || pre.headers["access-control-allow-origin"] !== "*") fail("CORS preflight", `${pre.status} ${JSON.stringify(pre.headers)}`);
  else ok("CORS preflight", `${pre.status}, allow-headers ${pre.headers["access-control-allow-headers"]}`);
  const acao = await request("GET", `${CLEAN}/res.php?key=${KEY}&action=getbalance&json=1&header_acao=1`, {});
  if (acao.headers["access-control-allow-origin"] !== "*") fail("header_acao=1", JSON.stringify(acao.headers));
  else ok("header_acao=1", acao.body);

  console.log(`\n${done.length} checks passed, ${failures.length} failed: ${nOfficial} methods of @2captcha/captcha-solver, ` +
    `${nCommunity} of 2captcha, in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (failures.length) {
    console.log("failures:\n  " + failures.join("\n  "));
    process.exit(1);
  }
}

// ---- MODE=gateway ----

// The clients' HTTP requests, watched through Node's diagnostics channels
// (the clients are unchanged): how many are in flight, and how many in.php
// answers came back.
const wire = { inFlight: 0, inAnswers: 0, errors: 0 };
function watchWire() {
  diagnostics.subscribe("http.client.request.start", () => { wire.inFlight++; });
  diagnostics.subscribe("http.client.response.finish", ({ request }) => {
    wire.inFlight--;
    if (String(request.path).startsWith("/in.php")) wire.inAnswers++;
  });
  diagnostics.subscribe("http.client.request.error", () => { wire.inFlight--; wire.errors++; });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// startGateway runs GATEWAY_CMD and resolves with the child once it
// printed its URL.
function startGateway(url) {
  const cmd = JSON.parse(env("GATEWAY_CMD"));
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
  fs.writeFileSync(env("GATEWAY_PIDFILE"), String(child.pid));
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("the restarted gateway printed no URL in 10 s")), 10000);
    child.on("exit", (code) => reject(new Error(`the restarted gateway exited with ${code}`)));
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes("\n")) {
        clearTimeout(timer);
        const got = out.split("\n")[0].trim();
        if (got !== url) reject(new Error(`restarted on ${got}, not ${url}`));
        child.stdout.resume();
        resolve(child);
      }
    });
  });
}

async function metrics(base) {
  const r = await request("GET", base + "/metrics", {});
  return r.body;
}

function counter(text, name, labels) {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name + "{")) continue;
    if (labels.every((l) => line.includes(l))) sum += Number(line.split(" ").pop());
  }
  return sum;
}

async function mainGateway() {
  const t0 = Date.now();
  const GW = env("GATEWAY_URL");
  watchWire();
  const nOfficial = checkCoverage("official", official.Solver, officialCalls, ["balance", "pollResponse", "goodReport", "badReport"]);
  const nCommunity = checkCoverage("community", community.Solver, communityCalls, ["balance", "pollResponse", "goodReport", "report"]);

  // Every solving method, through the gateway, all at once: its simulator
  // answers NO_SLOT and UNSOLVABLE often, and the clients must never see
  // either.
  const off = officialAt(GW);
  const com = communityAt(GW);
  const all = Object.keys(officialCalls).length + Object.keys(communityCalls).length;
  const [offIDs, comIDs] = await Promise.all([solveAll("gateway official", off, officialCalls, all), solveAll("gateway community", com, communityCalls, all)]);

  for (const [name, s] of [["official", off], ["community", com]]) {
    try {
      const b = await s.balance();
      if (typeof b !== "number" || !(b > 0) || b >= 100) fail(`gateway ${name}.balance`, `balance ${b}: want the provider's, below 100 once tasks are charged`);
      else ok(`gateway ${name}.balance`, String(b));
    } catch (e) {
      fail(`gateway ${name}.balance`, String(e && (e.err || e.message)));
    }
  }
  try {
    ok("gateway official.goodReport", await off.goodReport(offIDs[0]));
    ok("gateway official.badReport", await off.badReport(offIDs[1]));
    ok("gateway official.badReport again", await off.badReport(offIDs[1])); // the client accepts ERROR_DUPLICATE_REPORT
    await com.goodReport(comIDs[0]);
    ok("gateway community.goodReport");
    await com.report(comIDs[1]);
    ok("gateway community.report");
  } catch (e) {
    fail("gateway reports", `${e && e.name}: ${e && (e.err || e.message)}`);
  }
  await expectAPIError("gateway community.report twice", community, () => com.report(comIDs[1]), "ERROR_DUPLICATE_REPORT");
  await expectAPIError("gateway official.goodReport unknown id", official, () => off.goodReport("1"), "ERROR_WRONG_CAPTCHA_ID");
  await expectAPIError("gateway official unknown key", official, () => officialAt(GW, OTHER_KEY).recaptcha({ pageurl: page, googlekey: "6LfD3PIbAAAAAJs_eEHvoOl75_83eXSqpPSRFJ_u" }), "ERROR_KEY_DOES_NOT_EXIST");
  await expectAPIError("gateway community unknown key", community, () => communityAt(GW, OTHER_KEY).recaptcha("6Le", page), "ERROR_KEY_DOES_NOT_EXIST");
  await expectAPIError("gateway community bad pageurl", community, () => com.hcaptcha("k", "not a url"), "ERROR_PAGEURL");

  const pre = await request("OPTIONS", GW + "/in.php", {
    Origin: "https://bot.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type",
  });
  if (pre.status !== 204 || pre.headers["access-control-allow-origin"] !== "*") fail("gateway CORS preflight", `${pre.status} ${JSON.stringify(pre.headers)}`);
  else ok("gateway CORS preflight", `${pre.status}`);
  const acao = await request("GET", `${GW}/res.php?key=${KEY}&action=getbalance&json=1&header_acao=1`, {});
  if (acao.headers["access-control-allow-origin"] !== "*") fail("gateway header_acao=1", JSON.stringify(acao.headers));
  else ok("gateway header_acao=1", acao.body);

  // The provider answered NO_SLOT and UNSOLVABLE; the clients never saw them.
  const m = await metrics(GW);
  const noSlot = counter(m, "captchafsm_api_answers_total", ['endpoint="in.php"', 'code="ERROR_NO_SLOT_AVAILABLE"']);
  const unsolvable = counter(m, "captchafsm_api_answers_total", ['endpoint="res.php"', 'code="ERROR_CAPTCHA_UNSOLVABLE"']);
  const shown = counter(m, "captchafsm_gateway_answers_total", ['code="ERROR_NO_SLOT_AVAILABLE"']) +
    counter(m, "captchafsm_gateway_answers_total", ['code="ERROR_CAPTCHA_UNSOLVABLE"']);
  if (!(noSlot > 0 && unsolvable > 0)) fail("gateway error mix", `the provider answered NO_SLOT ${noSlot} and UNSOLVABLE ${unsolvable} times: want both`);
  else if (shown !== 0) fail("gateway absorbs errors", `the clients were answered NO_SLOT or UNSOLVABLE ${shown} times`);
  else ok("gateway absorbs errors", `the provider answered NO_SLOT ${noSlot} and UNSOLVABLE ${unsolvable} times; the clients saw neither`);

  // Solves in flight across a SIGKILL and a restart of the gateway: the
  // clients submit together and poll every CRASH_POLL_MS; the gateway is
  // killed once every in.php answer is back and no request is in flight
  // (so that no client request dies with the process), and restarted on
  // the same address before the clients' first poll.
  const CRASH_POLL_MS = 2500;
  const crashOff = officialAt(GW, KEY, CRASH_POLL_MS);
  const crashCom = communityAt(GW, KEY, CRASH_POLL_MS);
  const inBefore = wire.inAnswers;
  const crashCalls = [
    ["official.recaptcha", () => crashOff.recaptcha({ pageurl: page + "?crash", googlekey: "6LfD3PIbAAAAAJs_eEHvoOl75_83eXSqpPSRFJ_u" })],
    ["official.hcaptcha", () => crashOff.hcaptcha({ pageurl: page + "?crash", sitekey: "b76cd927-d266-4cfb-a328-3b03ae07ded6" })],
    ["official.cloudflareTurnstile", () => crashOff.cloudflareTurnstile({ pageurl: page + "?crash", sitekey: "0x4AAAAAAAChNiVJM_WtShFf" })],
    ["official.geetest", () => crashOff.geetest({ pageurl: page + "?crash", gt: "f2ae6cadcf7886856696502e1d55e00c", challenge: "12345678abc90123d45678ef90123a456b" })],
    ["official.imageCaptcha", () => crashOff.imageCaptcha({ body: png, textinstructions: "crash" })],
    ["official.funCaptcha", () => crashOff.funCaptcha({ pageurl: page + "?crash", publickey: "804380F4-6844-FFA1-ED4E-5877CA1F1EA4" })],
    ["community.recaptcha", () => crashCom.recaptcha("6LfD3PIbAAAAAJs_eEHvoOl75_83eXSqpPSRFJ_u", page + "?crash2")],
    ["community.hcaptcha", () => crashCom.hcaptcha("b76cd927-d266-4cfb-a328-3b03ae07ded6", page + "?crash2")],
    ["community.turnstile", () => crashCom.turnstile("0x4AAAAAAAChNiVJM_WtShFf", page + "?crash2")],
    ["community.imageCaptcha", () => crashCom.imageCaptcha(png2)],
  ];
  const solves = crashCalls.map(([what, call]) => call().then(
    (res) => ({ what, res }),
    (e) => ({ what, err: `${e && e.name}: ${e && (e.err || e.message)}` })));
  const deadline = Date.now() + 2000;
  while ((wire.inAnswers - inBefore < crashCalls.length || wire.inFlight > 0) && Date.now() < deadline) await sleep(5);
  let restarted = null;
  if (wire.inAnswers - inBefore < crashCalls.length || wire.inFlight > 0) {
    fail("gateway crash", `in.php answers ${wire.inAnswers - inBefore} of ${crashCalls.length}, ${wire.inFlight} requests in flight after 2 s`);
  } else {
    const killedAt = Date.now();
    process.kill(Number(env("GATEWAY_PID")), "SIGKILL");
    await sleep(50); // the kernel closes the dead process's sockets
    try {
      restarted = await startGateway(GW);
      ok("gateway SIGKILL and restart", `${crashCalls.length} solves in flight, back on ${GW} in ${Date.now() - killedAt} ms`);
    } catch (e) {
      fail("gateway restart", String(e && e.message));
    }
  }
  for (const r of await Promise.all(solves)) {
    if (r.err) fail(`gateway across the crash: ${r.what}`, r.err);
    else if (!r.res || r.res.data === undefined || r.res.data === "") fail(`gateway across the crash: ${r.what}`, `no answer: ${JSON.stringify(r.res)}`);
    else ok(`gateway across the crash: ${r.what}`, `${answerText(r.res).slice(0, 40)}`);
  }
  if (restarted) {
    restarted.kill("SIGINT");
    const code = await new Promise((r) => restarted.on("exit", (c) => r(c)));
    if (code !== 0) fail("gateway stop", `exit ${code}`);
  }

  console.log(`\n${done.length} checks passed, ${failures.length} failed: ${nOfficial} methods of @2captcha/captcha-solver, ` +
    `${nCommunity} of 2captcha, through the gateway, in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (failures.length) {
    console.log("failures:\n  " + failures.join("\n  "));
    process.exit(1);
  }
}

(GATEWAY ? mainGateway() : main()).catch((e) => {
  console.error("driver:", e);
  process.exit(1);
});
