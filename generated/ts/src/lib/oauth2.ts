// Copied by codegen from handwritten/ts/oauth2.ts, the hand-written part of this package.
// Do not edit here: edit handwritten/ts/, then run `make generate`.
/**
 * OAuth 2.0 (private_key_jwt) against IBKR's hosted API, with the Python client's rules (handwritten/oauth2.py and
 * oauth2_client.py), signed with `node:crypto` only:
 *
 * 1. Access token: `POST <tokenUrl>`, form-encoded `grant_type=client_credentials`, `client_assertion_type`
 *    (jwt-bearer), `client_assertion`, `scope`, `client_id`. The assertion is an RS256 JWT (header `kid`) with
 *    `iss` = `sub` = the client id, `aud` "/token", `iat` 10 s back for clock skew, `exp` 60 s later, a fresh `jti`.
 * 2. SSO session: `POST <ssoSessionUrl>` with the access token as bearer and `Content-Type: application/jwt`; the
 *    body is an RS256 JWT with `ip`, `credential` (the username), `iss`, `iat`, `exp`. Its answer's `access_token`
 *    is the session token: the bearer of every /v1/api request. /gw/api/v1 requests carry the access token.
 * 3. Account Management (/gw/api/v1): an operation whose scopes the token lacks is refused before it is sent; a
 *    `SIGNED_JWT` operation's body travels as an RS256 JWT of its members plus `iss`, `iat` and `exp`.
 *
 * Both are obtained before the first request that needs them; concurrent requests share one fetch. The access token
 * is renewed a quarter of its lifetime before it expires (at most a minute ahead), so a short `expires_in` never
 * turns into a refresh loop. After a 401 the token the request carried is renewed once (a new SSO session for
 * /v1/api, then the brokerage session again if this client opened it; a new access token for /gw/api/v1), unless
 * another request already renewed it; the refused request is sent again only when the catalogue marks it `safe`.
 * A 401 means it was not processed, but an unsafe request is never re-sent.
 *
 * Secrets (the private key, the assertion, the session JWT, both tokens) live in private fields only: they never
 * appear in an error message, `util.inspect` or `JSON.stringify` of the transport.
 */

import { createPrivateKey, randomBytes, sign, type KeyObject } from "node:crypto";

import {
  IbkrError,
  IbkrHttpError,
  Transport,
  type Answer,
  type PacingTable,
  type PreparedRequest,
  type TransportOptions,
} from "./transport.js";

export const DEFAULT_REST_URL = "https://api.ibkr.com/v1/api";
export const DEFAULT_TOKEN_URL = "https://api.ibkr.com/oauth2/api/v1/token";
export const DEFAULT_SSO_SESSION_URL = "https://api.ibkr.com/gw/api/v1/sso-sessions";
export const DEFAULT_SCOPE = "sso-sessions.write";

const CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const ASSERTION_LIFETIME_S = 60; // IBKR accepts at most 300 s
const CLOCK_SKEW_S = 10; // `iat` is backdated so that a server clock slightly behind ours accepts the JWT
const SESSION_JWT_LIFETIME_S = 86_400;
const SIGNED_BODY_LIFETIME_S = 60;
const DEFAULT_TOKEN_LIFETIME_S = 3600; // when the answer has no `expires_in`
const MAX_RENEWAL_MARGIN_MS = 60_000;
const MIN_KEY_BITS = 2048;
const RECOMMENDED_KEY_BITS = 3072;
const ACCOUNT_MANAGEMENT_BASE = "/gw/api/v1";
const MASK = "***";

/** Settings of OAuth 2.0, as IBKR registered the client (the `oauth2` option of `IbkrClient`). */
export interface OAuth2Options {
  /** The client id IBKR registered. */
  clientId: string;
  /** The key id (`kid`) IBKR registered with the public key. */
  clientKeyId: string;
  /** The RSA private key (at least 2048 bits; IBKR asks for 3072 or 4096), PEM in PKCS#8 or PKCS#1 form. */
  privateKey: string;
  /** The IBKR username the SSO session acts for (its `credential`). */
  username: string;
  /** Your public IP address, as registered with IBKR; needed for the SSO session (/v1/api), never looked up. */
  ipAddress?: string;
  /** The token endpoint; default `https://api.ibkr.com/oauth2/api/v1/token`. */
  tokenUrl?: string;
  /** The SSO session endpoint; default `https://api.ibkr.com/gw/api/v1/sso-sessions`. */
  ssoSessionUrl?: string;
  /** Space-separated scopes to request; default `sso-sessions.write` (add e.g. `accounts.read` for /gw/api/v1). */
  scope?: string;
}

/** Which OAuth 2.0 step failed: the settings (at construction), the access token, the SSO session, or the checks
 * of an Account Management request (its scope, its body) before it is sent. */
export type OAuth2Step = "settings" | "access token" | "SSO session" | "Account Management request";

/**
 * An OAuth 2.0 step failed: the settings were refused, or the token or session request was refused or got no
 * answer. `status` is the HTTP status and `code` IBKR's error code (`invalid_client`, `Forbidden`, ...) when there
 * was an answer. The message quotes IBKR's answer and never holds a key, an assertion or a token.
 */
export class IbkrOAuth2Error extends IbkrError {
  override name = "IbkrOAuth2Error";
  constructor(
    message: string,
    readonly step: OAuth2Step,
    readonly status?: number,
    readonly code?: string,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

/** Milliseconds before expiry at which a token of `lifetimeMs` is renewed: a quarter of it, at most a minute. */
export function renewalMarginMs(lifetimeMs: number): number {
  return Math.min(MAX_RENEWAL_MARGIN_MS, Math.max(0, lifetimeMs) / 4);
}

type Need = "access" | "session";

interface AccessToken {
  readonly value: string;
  readonly expiresAt: number; // performance.now() milliseconds
  readonly lifetimeMs: number;
  readonly scopes: readonly string[];
}

/** True when `token` is missing or within its renewal margin. */
const due = (token: AccessToken | undefined): boolean =>
  token === undefined || performance.now() >= token.expiresAt - renewalMarginMs(token.lifetimeMs);

/** A bearer to send and the generation of its token (which a 401 renewal compares). */
interface Grant {
  readonly bearer: string;
  readonly generation: number;
}

interface Settings {
  clientId: string;
  clientKeyId: string;
  username: string;
  ipAddress: string | undefined;
  tokenUrl: string;
  ssoSessionUrl: string;
  scope: string;
  key: KeyObject;
}

const KNOWN = new Set([
  "clientId",
  "clientKeyId",
  "privateKey",
  "username",
  "ipAddress",
  "tokenUrl",
  "ssoSessionUrl",
  "scope",
]);

const settingsError = (problem: string) => new IbkrOAuth2Error(`OAuth 2.0 settings: ${problem}`, "settings");

const blank = (value: unknown): boolean =>
  value === undefined || value === null || (typeof value === "string" && value.trim() === "");

/** A display of `value` that never shows a long text in full (a key given in the wrong field). */
const shown = (value: unknown): string => {
  const text = typeof value === "string" ? value : String(value);
  return JSON.stringify(text.length <= 60 ? text : `${text.slice(0, 20)}...`);
};

function httpUrl(option: string, value: unknown): string {
  let url: URL | undefined;
  try {
    url = typeof value === "string" ? new URL(value.trim()) : undefined;
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:") || url.host === "") {
    throw settingsError(`${option} must be an http(s) URL, got ${shown(value)}`);
  }
  return (value as string).trim();
}

function loadKey(pem: string): KeyObject {
  const what = "oauth2.privateKey";
  if (/-----BEGIN (RSA )?PUBLIC KEY-----|-----BEGIN CERTIFICATE-----/.test(pem)) {
    throw settingsError(`${what} holds a public key or a certificate; the RSA private key is needed`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: "pem" });
  } catch {
    throw settingsError(
      `${what} does not hold an RSA private key in PEM (PKCS#8 or PKCS#1) form ` +
        "(passphrase-protected keys are not supported)",
    );
  }
  if (key.asymmetricKeyType !== "rsa") {
    throw settingsError(`${what} is an ${String(key.asymmetricKeyType).toUpperCase()} key; an RSA key is needed`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_KEY_BITS) throw settingsError(`${what} is a ${bits}-bit key; at least ${MIN_KEY_BITS} bits needed`);
  if (bits < RECOMMENDED_KEY_BITS) {
    process.emitWarning(`OAuth 2.0: the private key has ${bits} bits; IBKR asks for ${RECOMMENDED_KEY_BITS} or 4096`);
  }
  return key;
}

/** The settings, checked: every refusal names the option, and nothing of the key is quoted. */
function checkSettings(options: unknown): Settings {
  if (options === null || typeof options !== "object") throw settingsError("oauth2 must be an object of settings");
  const o = options as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !KNOWN.has(k));
  if (unknown.length > 0) {
    const known = [...KNOWN].join(", ");
    throw settingsError(`unknown option ${unknown.map((k) => `oauth2.${k}`).join(", ")}; known: ${known}`);
  }
  const missing = ["clientId", "clientKeyId", "privateKey", "username"].filter((k) => blank(o[k]));
  if (missing.length > 0) throw settingsError(`missing ${missing.map((k) => `oauth2.${k}`).join(", ")}`);
  const notText = [...KNOWN].filter((k) => !blank(o[k]) && typeof o[k] !== "string");
  if (notText.length > 0) throw settingsError(`${notText.map((k) => `oauth2.${k}`).join(", ")} must be text`);
  if (o.scope !== undefined && blank(o.scope)) throw settingsError("oauth2.scope must not be empty");
  return {
    clientId: (o.clientId as string).trim(),
    clientKeyId: (o.clientKeyId as string).trim(),
    username: (o.username as string).trim(),
    ipAddress: blank(o.ipAddress) ? undefined : (o.ipAddress as string).trim(), // blank: not set, as in Python
    tokenUrl: httpUrl("oauth2.tokenUrl", o.tokenUrl ?? DEFAULT_TOKEN_URL),
    ssoSessionUrl: httpUrl("oauth2.ssoSessionUrl", o.ssoSessionUrl ?? DEFAULT_SSO_SESSION_URL),
    scope: ((o.scope as string | undefined) ?? DEFAULT_SCOPE).split(/\s+/).filter(Boolean).join(" "),
    key: loadKey(o.privateKey as string),
  };
}

const b64url = (data: string | Uint8Array): string => Buffer.from(data).toString("base64url");

/** A compact RS256 JWS of `claims` (RSASSA-PKCS1-v1_5 over SHA-256), with `kid` in its header. */
function signJwt(claims: Record<string, unknown>, key: KeyObject, kid: string): string {
  const input = `${b64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(sign("sha256", Buffer.from(input, "ascii"), key))}`;
}

const issuedAt = (): number => Math.floor(Date.now() / 1000) - CLOCK_SKEW_S;

/** `HTTP 401 invalid_client: <description>` of an OAuth error answer (RFC 6749) or a problem detail (RFC 9457). */
function refusal(status: number, data: unknown, text: string): { text: string; code: string | undefined } {
  let code = "";
  let description = "";
  if (data !== null && typeof data === "object" && !Array.isArray(data)) {
    const d = data as Record<string, unknown>;
    code = String(d.error || d.title || d.code || "");
    description = String(d.error_description || d.detail || d.message || "");
  } else if (text.trim() !== "") {
    description = text.trim().slice(0, 200);
  }
  let out = `HTTP ${status}`;
  if (code) out += ` ${code}`;
  if (description) out += `: ${description}`;
  return { text: out, code: code || undefined };
}

function decoded(answer: Answer): unknown {
  try {
    return answer.text.trim() === "" ? undefined : JSON.parse(answer.text);
  } catch {
    return undefined;
  }
}

/** What a failed network exchange was, in a word or two (its code), without anything of the request. */
function failureName(error: unknown): string {
  let current: unknown = error;
  for (let i = 0; i < 5 && current instanceof Error && current.cause !== undefined; i++) current = current.cause;
  const code = (current as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : current instanceof Error ? current.name : "error";
}

const isAccountManagement = (request: PreparedRequest): boolean =>
  request.base !== undefined && (request.base + "/").startsWith(ACCOUNT_MANAGEMENT_BASE + "/");

/**
 * The transport of an `IbkrClient` created with `oauth2`: every request carries the bearer IBKR's hosted API expects
 * (the SSO session token on /v1/api, the access token on /gw/api/v1), obtained and renewed as the module describes.
 * The base URL defaults to `https://api.ibkr.com/v1/api`.
 */
export class OAuth2Transport extends Transport {
  readonly clientId: string;
  readonly clientKeyId: string;
  readonly username: string;
  readonly ipAddress: string | undefined;
  readonly tokenUrl: string;
  readonly ssoSessionUrl: string;
  readonly scope: string;
  readonly #key: KeyObject;
  #access: AccessToken | undefined;
  #session: string | undefined;
  #accessGeneration = 0;
  #sessionGeneration = 0;
  /** The one token or session fetch in progress: every request that needs it waits for it (and shares a failure). */
  #pending: Promise<void> | undefined;
  /** The brokerage session request this client sent with success: sent again after each new SSO session. */
  #brokerage: PreparedRequest | undefined;

  constructor(options: TransportOptions, limits?: PacingTable) {
    const settings = checkSettings(options.oauth2);
    super({ ...options, baseUrl: httpUrl("baseUrl", options.baseUrl ?? DEFAULT_REST_URL) }, limits);
    this.clientId = settings.clientId;
    this.clientKeyId = settings.clientKeyId;
    this.username = settings.username;
    this.ipAddress = settings.ipAddress;
    this.tokenUrl = settings.tokenUrl;
    this.ssoSessionUrl = settings.ssoSessionUrl;
    this.scope = settings.scope;
    this.#key = settings.key;
  }

  /** True once an SSO session is open (requests to /v1/api can go out). */
  get hasSession(): boolean {
    return this.#session !== undefined;
  }

  /** The scopes of the access token (those requested when its answer names none); empty before the first one. */
  get grantedScopes(): readonly string[] {
    const access = this.#access;
    if (access === undefined) return [];
    return access.scopes.length > 0 ? access.scopes : this.scope.split(" ");
  }

  /** Get the access token and open the SSO session now rather than before the first request (fails early). */
  async authenticate(): Promise<void> {
    await this.#ready("session");
  }

  override async send(request: PreparedRequest): Promise<unknown> {
    const need: Need = isAccountManagement(request) ? "access" : "session";
    this.#check(request, this.scope.split(" ")); // a scope that was not even asked for: nothing is sent at all
    let grant = await this.#ready(need);
    this.#check(request, this.grantedScopes);
    try {
      return await this.#sendWith(request, grant);
    } catch (error) {
      if (!(error instanceof IbkrHttpError) || error.status !== 401) throw error;
      // Refused, so not processed: renew once; send again only what the catalogue marks safe, as Python does.
      await this.#renewAfter401(need, grant.generation);
      if (request.retry !== "safe") throw error;
      grant = await this.#ready(need);
      return await this.#sendWith(request, grant);
    }
  }

  /** A /gw/api/v1 operation needs one of its scopes, and a `SIGNED_JWT` body must be a JSON object. */
  #check(request: PreparedRequest, scopes: readonly string[]): void {
    const needed = request.scopes ?? [];
    const what = `${request.endpoint}: ${request.http} ${request.base ?? ""}${request.path}`;
    if (needed.length > 0 && !needed.some((s) => scopes.includes(s))) {
      throw new IbkrOAuth2Error(
        `${what} needs the OAuth 2.0 scope ${needed.join(" or ")}, but the access token has ` +
          `${scopes.join(" ") || "none"}: add it to oauth2.scope; the request was not sent`,
        "Account Management request",
      );
    }
    const body = request.body;
    const object = body !== null && typeof body === "object" && !Array.isArray(body);
    if (request.security === "SIGNED_JWT" && body !== undefined && !object) {
      throw new IbkrOAuth2Error(
        `${what}: a SIGNED_JWT body must be a JSON object; the request was not sent`,
        "Account Management request",
      );
    }
  }

  /** A `SIGNED_JWT` body as a JWT of its members (after `iss`, `iat`, `exp`, which the members may set themselves). */
  protected override encodeBody(request: PreparedRequest): { payload: string; contentType: string } | undefined {
    if (request.security !== "SIGNED_JWT" || request.body === undefined) return super.encodeBody(request);
    const iat = issuedAt();
    const claims = { iss: this.clientId, iat, exp: iat + SIGNED_BODY_LIFETIME_S, ...(request.body as object) };
    return { payload: signJwt(claims, this.#key, this.clientKeyId), contentType: "application/jwt" };
  }

  async #sendWith(request: PreparedRequest, grant: Grant): Promise<unknown> {
    const answer = await this.sendWith(request, { Authorization: `Bearer ${grant.bearer}` });
    if (request.endpoint === "initialize_brokerage_session") this.#brokerage = request;
    return answer;
  }

  /** The bearer for `need`, when it is there and (unless `renewed` says we just waited for a fetch) not due. */
  #grant(need: Need, renewed: boolean): Grant | undefined {
    const access = this.#access;
    if (access === undefined) return undefined;
    if (!renewed && due(access)) return undefined;
    if (need === "access") return { bearer: access.value, generation: this.#accessGeneration };
    const session = this.#session;
    return session === undefined ? undefined : { bearer: session, generation: this.#sessionGeneration };
  }

  /** The bearer for `need`, after the fetch it waits for (one for all callers; its failure is theirs too). */
  async #ready(need: Need): Promise<Grant> {
    let renewed = false;
    for (;;) {
      const grant = this.#grant(need, renewed);
      if (grant !== undefined) return grant;
      // After a fetch we waited for, a due token is taken as it is: a short lifetime must not become a loop.
      if (this.#pending === undefined) this.#run(() => this.#establish(need));
      await this.#pending;
      renewed = true;
    }
  }

  /** Run `action` as the one fetch in progress. */
  #run(action: () => Promise<void>): void {
    this.#pending = action().finally(() => {
      this.#pending = undefined;
    });
  }

  async #establish(need: Need): Promise<void> {
    if (need === "session" && this.#session === undefined) return this.#openSession();
    if (due(this.#access)) await this.#fetchToken();
  }

  /** After a 401 with the token of `generation`: a new one, unless another request has renewed it meanwhile. */
  async #renewAfter401(need: Need, generation: number): Promise<void> {
    const current = () => (need === "access" ? this.#accessGeneration : this.#sessionGeneration);
    while (this.#pending !== undefined) await this.#pending.catch(() => undefined);
    if (current() !== generation) return;
    this.#run(async () => {
      if (need === "access") return this.#fetchToken();
      this.#session = undefined; // requests that need it now wait for the new one
      await this.#openSession();
      const brokerage = this.#brokerage;
      const session = this.#session as string | undefined;
      // The brokerage session belonged to the old SSO session: open it again, once, outside the 401 handling.
      if (brokerage !== undefined && session !== undefined) {
        await this.sendWith(brokerage, { Authorization: `Bearer ${session}` });
      }
    });
    await this.#pending;
  }

  async #fetchToken(): Promise<void> {
    const iat = issuedAt();
    const claims = {
      iss: this.clientId,
      sub: this.clientId,
      aud: "/token",
      iat,
      exp: iat + ASSERTION_LIFETIME_S,
      jti: randomBytes(18).toString("base64url"),
    };
    const assertion = signJwt(claims, this.#key, this.clientKeyId);
    const form = new URLSearchParams({
      grant_type: "client_credentials",
      client_assertion_type: CLIENT_ASSERTION_TYPE,
      client_assertion: assertion,
      scope: this.scope,
      client_id: this.clientId,
    });
    const headers = { Accept: "application/json", "Content-Type": "application/x-www-form-urlencoded" };
    const answer = await this.#post("access token", this.tokenUrl, headers, form.toString(), [assertion]);
    const data = decoded(answer);
    const d = (data ?? {}) as Record<string, unknown>;
    const token = d.access_token;
    if (answer.status < 200 || answer.status >= 300 || typeof token !== "string" || token === "") {
      throw this.#refused("access token", answer, data, [assertion]);
    }
    let lifetime = DEFAULT_TOKEN_LIFETIME_S;
    if (d.expires_in !== undefined && d.expires_in !== null) {
      lifetime = Number(d.expires_in);
      if (typeof d.expires_in === "boolean" || !Number.isFinite(lifetime)) {
        throw new IbkrOAuth2Error(
          "OAuth 2.0 access token answer: expires_in is not a number",
          "access token",
          answer.status,
        );
      }
    }
    const scopes = typeof d.scope === "string" ? d.scope.split(/\s+/).filter(Boolean) : [];
    const lifetimeMs = lifetime * 1000;
    this.#access = { value: token, expiresAt: performance.now() + lifetimeMs, lifetimeMs, scopes };
    this.#accessGeneration++;
  }

  /** Open an SSO session: with a new access token first when it is due, and once more with a new one when IBKR
   * refuses the one we had (revoked or expired early on its side). */
  async #openSession(): Promise<void> {
    if (this.ipAddress === undefined) {
      throw new IbkrOAuth2Error(
        "OAuth 2.0 SSO session: oauth2.ipAddress is not set (IBKR checks it against the whitelist registered " +
          "for the client); nothing was sent",
        "SSO session",
      );
    }
    const fresh = due(this.#access);
    if (fresh) await this.#fetchToken();
    let [answer, jwt] = await this.#postSession(this.ipAddress);
    if (answer.status === 401 && !fresh) {
      await this.#fetchToken();
      [answer, jwt] = await this.#postSession(this.ipAddress);
    }
    const data = decoded(answer);
    const d = (data ?? {}) as Record<string, unknown>;
    const token = d.access_token;
    if (answer.status < 200 || answer.status >= 300 || typeof token !== "string" || token === "") {
      throw this.#refused("SSO session", answer, data, [jwt]);
    }
    if (d.active === false) {
      throw new IbkrOAuth2Error("OAuth 2.0 SSO session answer: the session is not active", "SSO session");
    }
    this.#session = token;
    this.#sessionGeneration++;
  }

  async #postSession(ip: string): Promise<[Answer, string]> {
    const access = this.#access!.value;
    const iat = issuedAt();
    const claims = { ip, credential: this.username, iss: this.clientId, iat, exp: iat + SESSION_JWT_LIFETIME_S };
    const jwt = signJwt(claims, this.#key, this.clientKeyId);
    const headers = { Authorization: `Bearer ${access}`, "Content-Type": "application/jwt" };
    return [await this.#post("SSO session", this.ssoSessionUrl, headers, jwt, [jwt]), jwt];
  }

  async #post(
    step: OAuth2Step,
    url: string,
    headers: Record<string, string>,
    payload: string,
    secrets: string[],
  ): Promise<Answer> {
    try {
      return await this.post(url, headers, payload);
    } catch (error) {
      const message = `OAuth 2.0 ${step} request to ${new URL(url).host} got no answer (${failureName(error)})`;
      throw new IbkrOAuth2Error(this.#scrub(message, secrets), step, undefined, undefined, error);
    }
  }

  /** The error of a refused (or unusable) answer, quoting IBKR's code and description. */
  #refused(step: OAuth2Step, answer: Answer, data: unknown, secrets: string[]): IbkrOAuth2Error {
    const ok = answer.status >= 200 && answer.status < 300;
    const { text, code } = refusal(answer.status, data, answer.text);
    const message = ok ? `OAuth 2.0 ${step} answer lacks access_token` : `OAuth 2.0 ${step} request refused: ${text}`;
    return new IbkrOAuth2Error(this.#scrub(message, secrets), step, answer.status, ok ? undefined : code);
  }

  /** `text` without any secret this client holds or just sent (a server may quote what it received). */
  #scrub(text: string, sent: string[]): string {
    const secrets = [...sent, this.#access?.value, this.#session].filter((s): s is string => !!s && s.length >= 8);
    return secrets.reduce((out, secret) => out.split(secret).join(MASK), text);
  }
}
