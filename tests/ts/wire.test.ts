// Every catalogue example, called through the generated TypeScript client against the Python gateway simulator:
// the exact method, path, query and JSON body must arrive (the cases of tests/test_wire.py). Plus the argument checks
// (nothing sent), the retry policy and the TLS option. Run by `make ts-test` after tsc has built .ts-build/.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { IbkrClient, IbkrHttpError, IbkrValidationError } from "../../generated/ts/src/index.js";

interface Case {
  id: string;
  endpoint: string;
  area: string;
  method: string;
  modelled: boolean;
  call: Record<string, unknown>;
  expect: { method: string; path: string; query: Record<string, string>; body: unknown };
}

interface Seen {
  endpoint: string | null;
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  status: number | null;
}

const repo = fileURLToPath(new URL("../../..", import.meta.url)); // .ts-build/tests/ts/ → the repository
const python = process.env.IBKR_PYTHON ?? `${repo}.venv/bin/python`;
const bridge = spawn(python, [`${repo}tests/ts/sim_bridge.py`], { stdio: ["pipe", "pipe", "inherit"] });
const firstLine = await new Promise<string>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("the simulator bridge did not start within 30 s")), 30_000);
  bridge.on("error", reject);
  bridge.on("exit", (code) => reject(new Error(`the simulator bridge exited (${code})`)));
  createInterface({ input: bridge.stdout! }).once("line", (line) => {
    clearTimeout(timer);
    resolve(line);
  });
});
const urls = JSON.parse(firstLine) as { sim: string; secure: string; cacert: string; control: string };

async function control<T>(route: string, payload?: unknown): Promise<T> {
  const init = payload === undefined ? {} : { method: "POST", body: JSON.stringify(payload) };
  const response = await fetch(urls.control + route, init);
  return (await response.json()) as T;
}

function revive(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(revive);
  if (value !== null && typeof value === "object") {
    if ("$date" in value) return new Date(String(value.$date));
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(v)]));
  }
  return value;
}

const cases = await control<Case[]>("/cases");
const client = new IbkrClient({ baseUrl: urls.sim, accountId: "DU1234567", maxRetries: 0, timeoutMs: 5000 });
type Method = (args?: unknown) => Promise<unknown>;
const methodOf = (c: IbkrClient, area: string, name: string): Method => {
  const group = (c as unknown as Record<string, Record<string, Method>>)[area];
  const method = group?.[name];
  assert.ok(group && method, `the client has no ${area}.${name}`);
  return method.bind(group);
};

after(() => {
  bridge.stdin!.end(); // the bridge stops when its stdin closes
});

before(async () => {
  await control("/reset", {});
  await client.accounts.receiveBrokerageAccounts(); // the gateway's accounts-first rule, once per session
});

describe("every catalogue example reaches the wire exactly", () => {
  test("there are examples", () => assert.ok(cases.length > 100, `only ${cases.length} cases`));
  for (const c of cases) {
    test(c.id, async () => {
      await control("/reset", {});
      try {
        await methodOf(client, c.area, c.method)(revive(c.call));
      } catch (error) {
        if (!(error instanceof IbkrHttpError)) throw error; // e.g. 501 (not modelled): the request is what counts
      }
      const seen = await control<Seen[]>("/requests");
      assert.equal(seen.length, 1, "exactly one request per call");
      const got = seen[0]!;
      assert.equal(got.endpoint, c.endpoint);
      assert.deepEqual(
        { method: got.method, path: got.path, query: got.query, body: got.body },
        { method: c.expect.method, path: c.expect.path, query: c.expect.query, body: c.expect.body },
      );
      if (c.modelled) assert.notEqual(got.status, 501);
      else assert.equal(got.status, 501);
    });
  }
});

describe("arguments are checked before anything is sent", () => {
  const refused = async (call: () => Promise<unknown>, method: string, param: string, problem: RegExp) => {
    await control("/reset", {});
    await assert.rejects(call, (error: unknown) => {
      assert.ok(error instanceof IbkrValidationError, String(error));
      assert.equal(error.method, method);
      assert.equal(error.param, param);
      assert.match(error.message, problem);
      assert.match(error.message, new RegExp(`^${method}\\(\\): parameter '${param}'`));
      return true;
    });
    assert.deepEqual(await control<Seen[]>("/requests"), [], "nothing was sent");
  };

  test("a missing required parameter", () =>
    refused(
      () => methodOf(client, "marketdata", "liveMarketdataSnapshot")({ fields: ["31"] }),
      "liveMarketdataSnapshot",
      "conids",
      /is required/,
    ));
  test("a value outside the enum", () =>
    refused(
      () => methodOf(client, "marketdata", "marketdataHistoryByConid")({ conid: "265598", bar: "7min" }),
      "marketdataHistoryByConid",
      "bar",
      /must be one of .*1min/,
    ));
  test("a value that does not match the pattern", () =>
    refused(
      () => client.marketdata.liveMarketdataSnapshot({ conids: ["265598"], fields: ["31", "last"] }),
      "liveMarketdataSnapshot",
      "fields",
      /must match the pattern/,
    ));
  test("an empty list", () =>
    refused(
      () => client.marketdata.liveMarketdataSnapshot({ conids: [], fields: ["31"] }),
      "liveMarketdataSnapshot",
      "conids",
      /empty list/,
    ));
  test("a wrong type", () =>
    refused(
      () => methodOf(client, "marketdata", "marketdataHistoryByConid")({ conid: "1", bar: "1d", outsideRth: "yes" }),
      "marketdataHistoryByConid",
      "outsideRth",
      /must be true or false/,
    ));
  test("an unknown parameter", () =>
    refused(
      () => methodOf(client, "marketdata", "regulatorySnapshot")({ conid: "1", conidd: "2" }),
      "regulatorySnapshot",
      "conidd",
      /is not a parameter/,
    ));
  test("an account id when the client has none", () => {
    const bare = new IbkrClient({ baseUrl: urls.sim, maxRetries: 0 });
    const pnl = cases.find((c) => c.expect.path.includes("DU1234567") && !("accountId" in c.call));
    assert.ok(pnl, "an example relies on the default account");
    return refused(() => methodOf(bare, pnl.area, pnl.method)(revive(pnl.call)), pnl.method, "accountId", /accountId/);
  });
});

describe("transport", () => {
  test("a safe request is retried after a 503, once per failure", async () => {
    await control("/reset", {});
    await control("/inject", { route: "GET /iserver/accounts", kind: "status", value: 503, times: 1 });
    const retrying = new IbkrClient({ baseUrl: urls.sim, maxRetries: 2, retryBackoffMs: 1 });
    await retrying.accounts.receiveBrokerageAccounts();
    const seen = await control<Seen[]>("/requests");
    assert.deepEqual(
      seen.map((r) => r.status),
      [503, 200],
    );
  });

  test("an unsafe request is never re-sent", async () => {
    await control("/reset", {});
    await control("/inject", { route: "regulatory_snapshot", kind: "status", value: 503, times: 1 });
    const retrying = new IbkrClient({ baseUrl: urls.sim, maxRetries: 2, retryBackoffMs: 1 });
    await assert.rejects(retrying.marketdata.regulatorySnapshot({ conid: 265598 }), (error: unknown) => {
      assert.ok(error instanceof IbkrHttpError);
      assert.equal(error.status, 503);
      assert.match(error.message, /^regulatory_snapshot: HTTP 503/);
      return true;
    });
    assert.equal((await control<Seen[]>("/requests")).length, 1);
  });

  test("a timeout ends the attempt", async () => {
    await control("/reset", {});
    await control("/inject", { route: "GET /iserver/accounts", kind: "stall", value: 2, times: 1 });
    const impatient = new IbkrClient({ baseUrl: urls.sim, maxRetries: 0, timeoutMs: 200 });
    await assert.rejects(impatient.accounts.receiveBrokerageAccounts(), (error: unknown) => {
      assert.ok(error instanceof IbkrHttpError);
      assert.equal(error.status, undefined);
      return true;
    });
  });

  test("HTTPS with the gateway's self-signed certificate: trusted when given, refused otherwise", async () => {
    const ca = readFileSync(urls.cacert, "utf8");
    const trusting = new IbkrClient({ baseUrl: urls.secure, maxRetries: 0, tls: { ca } });
    assert.ok(Array.isArray((await trusting.accounts.receiveBrokerageAccounts()).accounts));
    const strict = new IbkrClient({ baseUrl: urls.secure, maxRetries: 0, tls: {} });
    await assert.rejects(strict.accounts.receiveBrokerageAccounts(), /certificate/);
  });
});
