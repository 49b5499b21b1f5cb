// Every catalogue example, called through the generated TypeScript client against the Python gateway simulator:
// the exact method, path, query and JSON body must arrive (the cases of tests/test_wire.py). Plus the argument checks
// (nothing sent), path parameters, pacing (what a pacing simulator saw), the retry policy with Retry-After, TLS and
// what a network failure says. Run by `make ts-test` after tsc has built .ts-build/.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";

import { startBridge } from "./_bridge.js";

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

const { bridge, firstLine } = await startBridge();
const urls = JSON.parse(firstLine) as {
  sim: string;
  secure: string;
  paced: string;
  pacedScale: number;
  cacert: string;
  control: string;
};

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
// Pacing off: the examples replay IBKR's per-endpoint periods (15 minutes for scanner parameters) otherwise.
const client = new IbkrClient({
  baseUrl: urls.sim,
  accountId: "DU1234567",
  maxRetries: 0,
  timeoutMs: 5000,
  pacing: false,
});
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
    const bare = new IbkrClient({ baseUrl: urls.sim, maxRetries: 0, pacing: false });
    const pnl = cases.find((c) => c.expect.path.includes("DU1234567") && !("accountId" in c.call));
    assert.ok(pnl, "an example relies on the default account");
    return refused(() => methodOf(bare, pnl.area, pnl.method)(revive(pnl.call)), pnl.method, "accountId", /accountId/);
  });
});

describe("transport", () => {
  test("a safe request is retried after a 503, once per failure", async () => {
    await control("/reset", {});
    await control("/inject", { route: "GET /iserver/accounts", kind: "status", value: 503, times: 1 });
    const retrying = new IbkrClient({ baseUrl: urls.sim, maxRetries: 2, retryBackoffMs: 1, pacing: false });
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
    const retrying = new IbkrClient({ baseUrl: urls.sim, maxRetries: 2, retryBackoffMs: 1, pacing: false });
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
    const impatient = new IbkrClient({ baseUrl: urls.sim, maxRetries: 0, timeoutMs: 200, pacing: false });
    await assert.rejects(impatient.accounts.receiveBrokerageAccounts(), (error: unknown) => {
      assert.ok(error instanceof IbkrHttpError);
      assert.equal(error.status, undefined);
      return true;
    });
  });

  test("HTTPS with the gateway's self-signed certificate: trusted when given, refused otherwise", async () => {
    const ca = readFileSync(urls.cacert, "utf8");
    const trusting = new IbkrClient({ baseUrl: urls.secure, maxRetries: 0, tls: { ca }, pacing: false });
    assert.ok(Array.isArray((await trusting.accounts.receiveBrokerageAccounts()).accounts));
    const strict = new IbkrClient({ baseUrl: urls.secure, maxRetries: 0, tls: {}, pacing: false });
    await assert.rejects(strict.accounts.receiveBrokerageAccounts(), (error: unknown) => {
      assert.ok(error instanceof IbkrHttpError && error.status === undefined);
      assert.match(error.message, /certificate .* is not trusted; pass tls: \{ ca \}/);
      assert.ok(error.cause instanceof Error, "the original error is kept");
      return true;
    });
  });

  test("without tls, a loopback gateway's self-signed certificate is accepted, as in Python", async () => {
    const local = new IbkrClient({ baseUrl: urls.secure, maxRetries: 0, pacing: false });
    assert.ok(Array.isArray((await local.accounts.receiveBrokerageAccounts()).accounts));
  });

  test("plain HTTP answering a TLS handshake is named", async () => {
    const confused = new IbkrClient({ baseUrl: urls.sim.replace("http:", "https:"), maxRetries: 0, pacing: false });
    await assert.rejects(confused.accounts.receiveBrokerageAccounts(), (error: unknown) => {
      assert.ok(error instanceof IbkrHttpError && error.status === undefined);
      assert.match(error.message, /answered in plain HTTP, not TLS; use an http:\/\/ URL/);
      return true;
    });
  });

  test("a refused connection says so, with its cause", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const nowhere = new IbkrClient({ baseUrl: `http://127.0.0.1:${port}/v1/api`, maxRetries: 0, pacing: false });
    await assert.rejects(nowhere.accounts.receiveBrokerageAccounts(), (error: unknown) => {
      assert.ok(error instanceof IbkrHttpError && error.status === undefined);
      assert.match(error.message, /ECONNREFUSED.*is the gateway running\?/);
      assert.doesNotMatch(error.message, /^[^:]*: no answer from [^:]*: fetch failed$/);
      assert.ok(error.cause instanceof Error);
      return true;
    });
  });
});

describe("path parameters are checked before anything is sent", () => {
  const refused = async (call: () => Promise<unknown>, param: string, problem: RegExp) => {
    await control("/reset", {});
    await assert.rejects(call, (error: unknown) => {
      assert.ok(error instanceof IbkrValidationError, String(error));
      assert.equal(error.param, param);
      assert.match(error.message, problem);
      return true;
    });
    assert.deepEqual(await control<Seen[]>("/requests"), [], "nothing was sent");
  };

  test("ids with a documented form", async () => {
    await refused(() => client.order.orderStatus({ orderId: "../../portfolio/accounts" }), "orderId", /IBKR order id/);
    await refused(() => client.contract.contractInformationByConid({ conid: "AAPL" }), "conid", /contract id/);
    await refused(() => client.portfolio.portfolioSummary({ accountId: "DU1/x" }), "accountId", /IBKR account id/);
  });

  test("dot segments and characters with a meaning in a path, in any path parameter", async () => {
    const search = (searchPattern: string) => () => client.accounts.searchDynamicAccount({ searchPattern });
    await refused(search(".."), "searchPattern", /change the path/);
    await refused(search("."), "searchPattern", /change the path/);
    const odd = [["a/b", "'/'"], ["a%2F", "'%'"], ["a?b", "'?'"], ["a#b", "'#'"], ["a\nb", "control"]];
    for (const [text, shown] of odd) {
      await refused(() => client.order.reply({ replyId: text!, confirmed: true }), "replyId", new RegExp(shown!));
    }
  });

  test("an opaque id keeps its slashes, percent-encoded", async () => {
    await control("/reset", {});
    await client.fyi.deleteFyiDevice({ deviceId: "apn://mtws@A1" }).catch(() => undefined);
    const seen = await control<Seen[]>("/requests");
    assert.deepEqual(
      seen.map((r) => r.path),
      ["/fyi/deliveryoptions/apn%3A%2F%2Fmtws%40A1"],
    );
  });
});

describe("pacing from the catalogue (what a simulator that enforces IBKR's limits saw)", () => {
  const burst = async (pacing: boolean): Promise<Seen[]> => {
    await control("/paced/reset", {});
    const options = { baseUrl: urls.paced, maxRetries: 0, pacing, pacingTimeScale: urls.pacedScale };
    const paced = new IbkrClient(options);
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 30; i++) calls.push(paced.accounts.receiveBrokerageAccounts());
    for (let i = 0; i < 3; i++) calls.push(paced.session.tickle());
    await Promise.allSettled(calls);
    return control<Seen[]>("/paced/requests");
  };

  test("a burst stays within the global limit and each endpoint's bucket", async () => {
    const seen = await burst(true);
    assert.equal(seen.length, 33);
    assert.deepEqual(
      seen.filter((r) => r.status !== 200).map((r) => `${r.endpoint} ${r.status}`),
      [],
    );
  });

  test("requests in flight count against a concurrency bucket", async () => {
    await control("/paced/reset", {});
    await control("/paced/inject", { route: "marketdata_history_by_conid", kind: "latency", value: 0.2, times: 8 });
    const paced = new IbkrClient({ baseUrl: urls.paced, maxRetries: 0, pacingTimeScale: urls.pacedScale });
    const history = methodOf(paced, "marketdata", "marketdataHistoryByConid");
    await Promise.allSettled(Array.from({ length: 8 }, () => history({ conid: "265598", bar: "1d", period: "1w" })));
    const seen = await control<Seen[]>("/paced/requests");
    assert.equal(seen.length, 8);
    assert.deepEqual(seen.filter((r) => r.status === 429), []);
  });

  test("the same burst unpaced draws 429s (so the test above can fail)", async () => {
    const seen = await burst(false);
    assert.ok(seen.some((r) => r.status === 429), JSON.stringify(seen.map((r) => r.status)));
  });
});

describe("Retry-After", () => {
  const server = async (answers: [number, Record<string, string>][]) => {
    const seen: string[] = [];
    const srv = createServer((req: IncomingMessage, res: ServerResponse) => {
      seen.push(`${req.method} ${req.url}`);
      const [status, headers] = answers[Math.min(seen.length - 1, answers.length - 1)]!;
      res.writeHead(status, { "Content-Type": "application/json", ...headers });
      res.end(JSON.stringify(status === 200 ? { accounts: ["DU1"] } : { error: "slow down" }));
    });
    await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/v1/api`;
    return { seen, base, close: () => new Promise<void>((resolve) => srv.close(() => resolve())) };
  };

  test("a safe request waits what the server asks, not its own backoff", { timeout: 10_000 }, async () => {
    const s = await server([[429, { "Retry-After": "0" }], [200, {}]]);
    try {
      // A 10-minute backoff: without Retry-After honoured, the test would time out.
      const patient = new IbkrClient({ baseUrl: s.base, maxRetries: 1, retryBackoffMs: 600_000, pacing: false });
      assert.deepEqual((await patient.accounts.receiveBrokerageAccounts()).accounts, ["DU1"]);
      assert.deepEqual(s.seen, ["GET /v1/api/iserver/accounts", "GET /v1/api/iserver/accounts"]);
    } finally {
      await s.close();
    }
  });

  test("a Retry-After beyond maxRetryAfterMs fails at once", async () => {
    const s = await server([[429, { "Retry-After": "120" }], [200, {}]]);
    try {
      const patient = new IbkrClient({ baseUrl: s.base, maxRetries: 3, retryBackoffMs: 1, pacing: false });
      await assert.rejects(patient.accounts.receiveBrokerageAccounts(), (error: unknown) => {
        assert.ok(error instanceof IbkrHttpError && error.status === 429);
        return true;
      });
      assert.equal(s.seen.length, 1);
    } finally {
      await s.close();
    }
  });

  test("an unsafe request is not re-sent even when the server says when", async () => {
    const s = await server([[429, { "Retry-After": "0" }], [200, {}]]);
    try {
      const patient = new IbkrClient({ baseUrl: s.base, maxRetries: 3, retryBackoffMs: 1, pacing: false });
      await assert.rejects(patient.marketdata.regulatorySnapshot({ conid: 265598 }));
      assert.equal(s.seen.length, 1);
    } finally {
      await s.close();
    }
  });
});
