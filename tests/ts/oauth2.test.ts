// OAuth 2.0 of the TypeScript client against the Python simulator acting as IBKR's hosted API over HTTPS
// (`sim_bridge.py --oauth2`): what the simulator received (token, SSO session, then each call with its bearer),
// renewal before expiry and once after a 401, refusals with IBKR's error code and nothing else sent, one token
// fetch for concurrent first calls, and the settings checked at construction. Run by `make ts-test`.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { createServer, type AddressInfo } from "node:net";
import { after, beforeEach, describe, test } from "node:test";
import { inspect } from "node:util";

import { startBridge } from "./_bridge.js";

import {
  IbkrClient,
  IbkrHttpError,
  IbkrOAuth2Error,
  OAuth2Transport,
  Transport,
  renewalMarginMs,
  type OAuth2Options,
} from "../../generated/ts/src/index.js";

interface Info {
  url: string;
  tokenUrl: string;
  ssoSessionUrl: string;
  clientId: string;
  clientKeyId: string;
  username: string;
  privateKey: string;
  scope: string;
  cacert: string;
  control: string;
}

interface Seen {
  endpoint: string | null;
  method: string;
  base: string;
  path: string;
  status: number | null;
  authorization: string | null;
  contentType: string | null;
}

interface Authority {
  tokensIssued: number;
  sessionsOpened: number;
  assertions: { header: Record<string, unknown>; claims: Record<string, unknown> }[];
  sessionClaims: Record<string, unknown>[];
  issued: string[]; // access and session tokens, in the order they were handed out
  receivedJwts: string[];
}

const { bridge, firstLine } = await startBridge(["--oauth2"]);
const info = JSON.parse(firstLine) as Info;

after(() => {
  bridge.stdin!.end(); // the bridge stops when its stdin closes
});

async function control<T>(route: string, payload?: unknown): Promise<T> {
  const init = payload === undefined ? {} : { method: "POST", body: JSON.stringify(payload) };
  const response = await fetch(info.control + route, init);
  return (await response.json()) as T;
}

const seen = () => control<Seen[]>("/requests");
const authority = () => control<Authority>("/oauth2");
/** The log as `endpoint status`, e.g. `oauth2_token 200`. */
const steps = async () => (await seen()).map((r) => `${r.endpoint} ${r.status}`);

const settings = (overrides: Partial<OAuth2Options> = {}): OAuth2Options => ({
  clientId: info.clientId,
  clientKeyId: info.clientKeyId,
  privateKey: info.privateKey,
  username: info.username,
  ipAddress: "127.0.0.1",
  tokenUrl: info.tokenUrl,
  ssoSessionUrl: info.ssoSessionUrl,
  scope: info.scope,
  ...overrides,
});

const connect = (overrides: Partial<OAuth2Options> = {}) =>
  new IbkrClient({
    baseUrl: info.url,
    oauth2: settings(overrides),
    tls: { ca: info.cacert }, // the token and SSO requests are verified with it too
    maxRetries: 0,
    timeoutMs: 5000,
    pacing: false,
  });

/** The PEM's base64 body, a line of it: what a leaked key would show. */
const keyLine = info.privateKey.split("\n")[5]!;

async function assertNoSecret(texts: string[]): Promise<void> {
  const a = await authority();
  const secrets = [...a.issued, ...a.receivedJwts, keyLine];
  for (const text of texts) for (const secret of secrets) assert.ok(!text.includes(secret), `a secret in: ${text}`);
}

describe("OAuth 2.0 against the simulator (HTTPS)", { timeout: 30_000 }, () => {
  beforeEach(() => control("/reset", {}));

  test("access token, then SSO session, then each call with its bearer", async () => {
    const client = connect();
    assert.ok(client.transport instanceof OAuth2Transport);
    const transport = client.transport;
    const open = () => transport.hasSession;
    assert.equal(open(), false);
    assert.ok(Array.isArray(await client.portfolio.portfolioAccounts()));
    assert.equal(open(), true);
    const echo = await client.gwPlatform.echoHttps();
    assert.deepEqual(echo, { requestMethod: "GET", securityPolicy: "HTTPS", queryParameters: {} });
    const a = await authority();
    const [accessToken, sessionToken] = a.issued;
    assert.deepEqual(await steps(), [
      "oauth2_token 200",
      "create_sso_session 200",
      "portfolio_accounts 200",
      "echo_https 200",
    ]);
    const log = await seen();
    assert.deepEqual(
      log.map((r) => [r.base, r.authorization]),
      [
        ["", null],
        ["/gw/api/v1", `Bearer ${accessToken}`],
        ["/v1/api", `Bearer ${sessionToken}`], // the session token on /v1/api
        ["/gw/api/v1", `Bearer ${accessToken}`], // the access token on /gw/api/v1
      ],
    );
    assert.equal(log[0]!.contentType, "application/x-www-form-urlencoded");
    assert.equal(log[1]!.contentType, "application/jwt");
    const { header, claims } = a.assertions[0]!;
    assert.deepEqual(header, { alg: "RS256", typ: "JWT", kid: info.clientKeyId });
    assert.deepEqual([claims.iss, claims.sub, claims.aud], [info.clientId, info.clientId, "/token"]);
    assert.equal(Number(claims.exp) - Number(claims.iat), 60);
    assert.match(String(claims.jti), /^[\w-]{24}$/);
    const session = a.sessionClaims[0]!;
    assert.deepEqual([session.ip, session.credential, session.iss], ["127.0.0.1", info.username, info.clientId]);
    assert.equal(Number(session.exp) - Number(session.iat), 86_400);
    await assertNoSecret([inspect(client, { depth: 5 }), inspect(client.transport, { showHidden: true })]);
    await assertNoSecret([JSON.stringify(client.transport)]);
  });

  test("concurrent first calls share one token and one session", async () => {
    const client = connect();
    await Promise.all([1, 2, 3].map(() => client.portfolio.portfolioAccounts()));
    const a = await authority();
    assert.deepEqual([a.tokensIssued, a.sessionsOpened], [1, 1]);
    assert.deepEqual((await steps()).slice(0, 2), ["oauth2_token 200", "create_sso_session 200"]);
    assert.equal((await steps()).filter((s) => s === "portfolio_accounts 200").length, 3);
  });

  test("a 401 renews once; the request is sent again only when safe", async () => {
    const client = connect();
    await client.session.initializeBrokerageSession();
    await control("/oauth2/expire", { what: "sessions" });
    const before = (await seen()).length;
    await client.portfolio.portfolioAccounts(); // safe: a new session, the brokerage session again, then once more
    assert.deepEqual((await steps()).slice(before), [
      "portfolio_accounts 401",
      "create_sso_session 200",
      "initialize_brokerage_session 200",
      "portfolio_accounts 200",
    ]);
    await control("/oauth2/expire", { what: "sessions" });
    const mark = (await seen()).length;
    await assert.rejects(client.session.logout(), (e: unknown) => e instanceof IbkrHttpError && e.status === 401);
    await client.portfolio.portfolioAccounts(); // the session was renewed: it goes through at once
    assert.deepEqual((await steps()).slice(mark), [
      "logout 401", // unsafe: not sent again
      "create_sso_session 200",
      "initialize_brokerage_session 200",
      "portfolio_accounts 200",
    ]);
    await control("/oauth2/expire", { what: "access" });
    const gw = (await seen()).length;
    await client.gwPlatform.echoHttps(); // /gw/api/v1 carries the access token: a new one
    assert.deepEqual((await steps()).slice(gw), ["echo_https 401", "oauth2_token 200", "echo_https 200"]);
    const a = await authority();
    assert.deepEqual([a.tokensIssued, a.sessionsOpened], [2, 3]);
  });

  test("requests refused together renew the session once", async () => {
    const client = connect();
    await client.portfolio.portfolioAccounts();
    await control("/oauth2/expire", { what: "sessions" });
    await Promise.all([client.portfolio.portfolioAccounts(), client.portfolio.portfolioAccounts()]);
    assert.equal((await authority()).sessionsOpened, 2); // the second 401 finds the session renewed already
    const statuses = (await seen()).filter((r) => r.endpoint === "portfolio_accounts").map((r) => r.status);
    assert.deepEqual(statuses.sort(), [200, 200, 200, 401, 401]);
  });

  test("the access token is renewed before it expires (a quarter of its lifetime ahead)", async () => {
    assert.deepEqual([renewalMarginMs(86_399_000), renewalMarginMs(8000), renewalMarginMs(0)], [60_000, 2000, 0]);
    await control("/oauth2/lifetime", { seconds: 2 }); // renewed from 1.5 s on
    const client = connect();
    await client.portfolio.portfolioAccounts();
    await new Promise((resolve) => setTimeout(resolve, 1600));
    await client.portfolio.portfolioAccounts();
    assert.deepEqual(await steps(), [
      "oauth2_token 200",
      "create_sso_session 200",
      "portfolio_accounts 200",
      "oauth2_token 200", // the session stays
      "portfolio_accounts 200",
    ]);
  });

  test("a refused token request is a clear error, shared by concurrent calls, and nothing else is sent", async () => {
    const client = connect({ clientId: "someone-else" });
    const calls = [client.portfolio.portfolioAccounts(), client.gwPlatform.echoHttps()];
    const errors = await Promise.all(calls.map((c) => c.then(() => assert.fail("no error"), (e: unknown) => e)));
    assert.equal(errors[0], errors[1]);
    const error = errors[0];
    assert.ok(error instanceof IbkrOAuth2Error);
    assert.deepEqual([error.step, error.status, error.code], ["access token", 401, "invalid_client"]);
    assert.match(error.message, /^OAuth 2\.0 access token request refused: HTTP 401 invalid_client: iss and sub/);
    assert.deepEqual(await steps(), ["oauth2_token 401"]);
    await assertNoSecret([error.message, inspect(error)]);
  });

  test("a refused SSO session is a clear error, and no call is sent", async () => {
    const client = connect({ ipAddress: "198.51.100.7" });
    const error = await client.portfolio.portfolioAccounts().then(() => assert.fail("no error"), (e: unknown) => e);
    assert.ok(error instanceof IbkrOAuth2Error);
    assert.deepEqual([error.step, error.status, error.code], ["SSO session", 403, "Forbidden"]);
    assert.match(error.message, /SSO session request refused: HTTP 403 Forbidden: ip is not in the registered/);
    assert.deepEqual(await steps(), ["oauth2_token 200", "create_sso_session 403"]);
    await assertNoSecret([error.message]);
  });

  test("Account Management: SIGNED_JWT bodies are signed; a scope the client lacks is refused unsent", async () => {
    const client = connect();
    const echo = await client.gwPlatform.echoSignedJwt({ payload: { note: "signed" } });
    assert.deepEqual(echo, {
      requestMethod: "POST",
      securityPolicy: "SIGNED_JWT",
      queryParameters: {},
      body: { note: "signed" }, // the members of a JWT the simulator verified with the registered key
    });
    const log = await seen();
    assert.deepEqual([log.at(-1)!.endpoint, log.at(-1)!.contentType], ["echo_signed_jwt", "application/jwt"]);
    const narrow = connect({ scope: "sso-sessions.write" });
    await assert.rejects(
      narrow.amAccounts.amAccountStatus({ accountId: "U1234567" }),
      (e: unknown) => e instanceof IbkrOAuth2Error && /needs the OAuth 2\.0 scope accounts\.read/.test(e.message),
    );
    assert.equal((await seen()).length, log.length);
  });

  test("without ipAddress: /gw/api/v1 works, /v1/api is refused before anything is sent", async () => {
    const client = connect({ ipAddress: undefined });
    await assert.rejects((client.transport as OAuth2Transport).authenticate(), /ipAddress is not set/);
    await assert.rejects(client.portfolio.portfolioAccounts(), /ipAddress is not set .*nothing was sent/);
    assert.deepEqual(await steps(), []);
    await client.gwPlatform.echoHttps();
    assert.deepEqual(await steps(), ["oauth2_token 200", "echo_https 200"]);
  });
});

test("a token endpoint that does not answer is an IbkrOAuth2Error naming the step, with its cause", async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const closed = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await new Promise((resolve) => server.close(resolve)); // nothing listens there now
  const client = connect({ tokenUrl: `${closed}/oauth2/api/v1/token` });
  const error = await client.portfolio.portfolioAccounts().then(() => assert.fail("no error"), (e: unknown) => e);
  assert.ok(error instanceof IbkrOAuth2Error && error.step === "access token" && error.status === undefined);
  assert.match(error.message, /^OAuth 2\.0 access token request to 127\.0\.0\.1:\d+ got no answer \(ECONNREFUSED\)$/);
  assert.ok(error.cause instanceof Error);
});

describe("OAuth 2.0 settings are checked at construction, naming the option", () => {
  const refused = (overrides: Record<string, unknown>, pattern: RegExp) =>
    assert.throws(
      () => new IbkrClient({ oauth2: { ...settings(), ...overrides } as OAuth2Options }),
      (e: unknown) => e instanceof IbkrOAuth2Error && e.step === "settings" && pattern.test(e.message),
    );

  test("missing ids and unknown options", () => {
    refused({ clientId: "" }, /missing oauth2\.clientId$/);
    refused({ clientId: undefined, username: " " }, /missing oauth2\.clientId, oauth2\.username/);
    refused({ clientID: "x" }, /unknown option oauth2\.clientID/);
  });

  test("a key that is not an RSA private key of 2048 bits or more", () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    refused({ privateKey: ec.privateKey.export({ type: "pkcs8", format: "pem" }) }, /privateKey is an EC key/);
    const small = generateKeyPairSync("rsa", { modulusLength: 1024 });
    refused({ privateKey: small.privateKey.export({ type: "pkcs1", format: "pem" }) }, /1024-bit key/);
    refused({ privateKey: small.publicKey.export({ type: "spki", format: "pem" }) }, /holds a public key/);
    refused({ privateKey: "not a key" }, /privateKey does not hold an RSA private key/);
  });

  test("URLs must be http(s)", () => {
    refused({ tokenUrl: "ftp://example.com/token" }, /oauth2\.tokenUrl must be an http\(s\) URL/);
    refused({ ssoSessionUrl: "sso-sessions" }, /oauth2\.ssoSessionUrl must be an http\(s\) URL/);
    assert.throws(() => new Transport({ oauth2: settings() }), /needs OAuth2Transport/);
    const hosted = new IbkrClient({ oauth2: { ...settings(), tokenUrl: undefined, ssoSessionUrl: undefined } });
    assert.equal(hosted.transport.baseUrl, "https://api.ibkr.com/v1/api"); // IBKR's hosted API by default
  });
});
