// Copied by codegen from handwritten/ts/transport.ts, the hand-written part of this package.
// Do not edit here: edit handwritten/ts/, then run `make generate`.
/**
 * How a prepared request travels: base URL, timeout, pacing, retries of requests the catalogue marks safe, and TLS
 * for the gateway's self-signed certificate. The one hand-written module of the TypeScript client; everything that
 * the catalogue describes (methods, argument checks, wire encoding, pacing limits, response types) is generated.
 *
 * Pacing: every request waits for a slot in the global limit (10 per second through the gateway) and in its
 * endpoint's bucket (a rate per period, or a number in flight), from the generated pacing table. As the Python
 * client's pacer counts, a request counts in a rate window from its start until its answer arrives, since the server
 * counts arrivals and a request may reach it late; unlike it, without a cap on that time, as an event loop under
 * load can hold a request back for longer. All clients of a process talking to one server share the limits, as IBKR
 * counts per IP.
 *
 * Retry policy: a `safe` request is re-sent after a network error, a timeout, HTTP 429 or 5xx, after the server's
 * `Retry-After` when it gives one (a longer wait than `maxRetryAfterMs` fails at once), else with exponential
 * backoff, at most `maxRetries` times. An `unsafe` request (orders, replies, cancels, writes) is never re-sent.
 *
 * TLS: without `tls`, a gateway on this machine (localhost, 127.0.0.0/8, ::1) is reached without certificate
 * verification (its certificate is self-signed), as the Python client does; any other host is verified.
 *
 * OAuth 2.0 (the `oauth2` option) is `OAuth2Transport` in oauth2.ts, a subclass that adds the bearer to each request.
 */

import type { OAuth2Options } from "./oauth2.js";

export interface TlsOptions {
  /** PEM certificate(s) to trust, e.g. the gateway's self-signed one. */
  ca?: string | Uint8Array;
  /** `false` accepts any certificate: only for a gateway you run yourself. Default `true` once `tls` is given. */
  rejectUnauthorized?: boolean;
}

export interface TransportOptions {
  /** Base URL of the API; default `https://localhost:5000/v1/api` (the Client Portal Gateway). */
  baseUrl?: string;
  /** Milliseconds before one attempt is abandoned; default 10000. */
  timeoutMs?: number;
  /** How often a safe request is re-sent after a failure; default 2. */
  maxRetries?: number;
  /** Wait before the first re-send in milliseconds, doubled for each further one; default 250. */
  retryBackoffMs?: number;
  /** Longest `Retry-After` (milliseconds) a retry waits for; a longer one fails at once. Default 60000. */
  maxRetryAfterMs?: number;
  /**
   * Certificate checks; when given (or for a loopback gateway), requests go through `node:https`, since Node's
   * `fetch` takes no CA per request. Default: no verification for a loopback host, the system's CAs otherwise.
   */
  tls?: TlsOptions;
  /** Keep requests within IBKR's limits (callers wait for a slot); default true. */
  pacing?: boolean;
  /** Multiplies every pacing period (tests run IBKR's seconds scaled down); default 1. */
  pacingTimeScale?: number;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
  /**
   * OAuth 2.0 against IBKR's hosted API (`IbkrClient` then uses `OAuth2Transport`; the base URL defaults to
   * `https://api.ibkr.com/v1/api`): client id, key id, RSA private key, username, IP address, token and SSO URLs.
   */
  oauth2?: OAuth2Options;
}

/** A validated request, as the generated wire code builds it. */
export interface PreparedRequest {
  /** The catalogue name of the endpoint, e.g. `live_marketdata_snapshot`. */
  readonly endpoint: string;
  readonly http: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Another base path on the same host as `baseUrl` (`/gw/api/v1`); absent: below `baseUrl`. */
  readonly base?: string;
  /** A /gw/api/v1 operation's security policy: with OAuth 2.0, a `SIGNED_JWT` body is sent as a signed JWT. */
  readonly security?: "HTTPS" | "SIGNED_JWT";
  /** OAuth 2.0 scopes that admit the operation (any one of them). */
  readonly scopes?: readonly string[];
  /** Path below the base URL, placeholders filled. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** JSON body, or `undefined` when none is sent. */
  readonly body: unknown;
  readonly retry: "safe" | "unsafe";
  /** The endpoint's pacing bucket, when it has one besides the global limit. */
  readonly pacing?: string;
}

/** One pacing limit: at most `rate` requests per `per` seconds, and/or `concurrent` in flight. */
export interface PacingBucket {
  readonly rate?: number;
  readonly per?: number;
  readonly concurrent?: number;
}

/** The catalogue's pacing limits (generated from spec/pacing.yaml into `_pacing.ts`). */
export interface PacingTable {
  readonly global: PacingBucket;
  readonly buckets: Readonly<Record<string, PacingBucket>>;
}

export class IbkrError extends Error {
  override name = "IbkrError";
}

/** A request failed: an HTTP error status (`status`), or no usable answer at all (`status` undefined, `cause` set). */
export class IbkrHttpError extends IbkrError {
  override name = "IbkrHttpError";
  constructor(
    readonly request: PreparedRequest,
    readonly status: number | undefined,
    detail: string,
    readonly body?: unknown,
    cause?: unknown,
  ) {
    const what = status === undefined ? "no answer" : `HTTP ${status}`;
    super(`${request.endpoint}: ${what} from ${request.http} ${request.path}: ${detail}`, { cause });
  }
}

/** A raw HTTP answer. */
export interface Answer {
  status: number;
  contentType: string;
  retryAfter: string | null;
  text: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const SEND_JITTER_MS = 250; // a request in flight counts at least this long after its start
const SAFETY_MS = 50;

interface Entry {
  start: number;
  end?: number;
}

/** At most `rate` requests in any `per`-millisecond window, as the server counts them (by arrival). */
class Window {
  private entries: Entry[] = [];
  constructor(
    readonly rate: number,
    readonly per: number,
  ) {}

  /** The latest moment the server can have counted `e`: its answer's arrival, or now while it is in flight. */
  private time(e: Entry, now: number): number {
    return e.end ?? Math.max(e.start + SEND_JITTER_MS, now);
  }

  /** Milliseconds to wait before a start is allowed (0: now); an answer arriving meanwhile may shorten it. */
  delay(now: number): number {
    this.entries = this.entries.filter((e) => now - this.time(e, now) < this.per);
    if (this.entries.length < this.rate) return 0;
    const times = this.entries.map((e) => this.time(e, now)).sort((a, b) => a - b);
    return times[times.length - this.rate]! + this.per - now;
  }

  record(now: number): Entry {
    const entry = { start: now };
    this.entries.push(entry);
    return entry;
  }

  finish(entry: Entry, now: number): void {
    entry.end = Math.max(now, entry.start + SEND_JITTER_MS);
  }
}

/** Keeps requests within the global limit and each endpoint's bucket; callers wait for a slot. */
export class Pacer {
  private readonly windows = new Map<string, Window>();
  private readonly global: Window | undefined;
  private readonly limits = new Map<string, number>();
  private readonly inFlight = new Map<string, number>();
  private wakers = new Set<() => void>();

  constructor(table: PacingTable, timeScale = 1) {
    const period = (seconds: number) => seconds * 1000 * timeScale * 1.01 + SAFETY_MS;
    const g = table.global;
    this.global = g.rate && g.per ? new Window(g.rate, period(g.per)) : undefined;
    for (const [name, b] of Object.entries(table.buckets)) {
      if (b.rate && b.per) this.windows.set(name, new Window(b.rate, period(b.per)));
      if (b.concurrent) this.limits.set(name, b.concurrent);
    }
  }

  /** Run `send` once a slot is free in every limit that applies to `bucket`; it counts until its answer. */
  async slot<T>(bucket: string | undefined, send: () => Promise<T>): Promise<T> {
    const limit = bucket === undefined ? undefined : this.limits.get(bucket);
    if (limit !== undefined) {
      while ((this.inFlight.get(bucket!) ?? 0) >= limit) await this.changed(Infinity);
      this.inFlight.set(bucket!, (this.inFlight.get(bucket!) ?? 0) + 1);
    }
    const windows = [this.global, bucket === undefined ? undefined : this.windows.get(bucket)].filter(
      (w): w is Window => w !== undefined,
    );
    const entries: [Window, Entry][] = [];
    try {
      for (;;) {
        const now = performance.now();
        const wait = Math.max(0, ...windows.map((w) => w.delay(now)));
        if (wait <= 0) {
          for (const w of windows) entries.push([w, w.record(now)]);
          break;
        }
        await this.changed(wait);
      }
      return await send();
    } finally {
      const now = performance.now();
      for (const [w, e] of entries) w.finish(e, now);
      if (limit !== undefined) this.inFlight.set(bucket!, (this.inFlight.get(bucket!) ?? 1) - 1);
      const wakers = this.wakers;
      this.wakers = new Set();
      for (const wake of wakers) wake();
    }
  }

  /** Resolves after `ms`, or earlier when an answer arrives and may have freed a slot; leaves no timer behind. */
  private changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
      const wakers = this.wakers;
      function done() {
        if (timer !== undefined) clearTimeout(timer);
        wakers.delete(done);
        resolve();
      }
      wakers.add(done);
    });
  }
}

const SHARED_PACERS = new Map<string, Pacer>();

/** The pacer of this process for one server (IBKR counts requests per IP, so all clients share it). */
export function sharedPacer(baseUrl: string, table: PacingTable, timeScale = 1): Pacer {
  const key = `${new URL(baseUrl).host.toLowerCase()}|${timeScale}`;
  let pacer = SHARED_PACERS.get(key);
  if (pacer === undefined) {
    pacer = new Pacer(table, timeScale);
    SHARED_PACERS.set(key, pacer);
  }
  return pacer;
}

/** True for `localhost` and loopback addresses (127.0.0.0/8, ::1). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h.endsWith(".localhost") || /^127(\.\d{1,3}){3}$/.test(h) || h === "::1";
}

export class Transport {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly maxRetries: number;
  readonly retryBackoffMs: number;
  readonly maxRetryAfterMs: number;
  readonly pacer: Pacer | undefined;
  private readonly tls: TlsOptions | undefined;
  private readonly tlsOption: TlsOptions | undefined;
  private readonly headers: Record<string, string>;

  /** `limits`: the catalogue's pacing table (the generated client passes it); without it, no pacing. */
  constructor(options: TransportOptions = {}, limits?: PacingTable) {
    if (options.oauth2 !== undefined && new.target === Transport) {
      throw new IbkrError("Transport: the oauth2 option needs OAuth2Transport (IbkrClient picks it by itself)");
    }
    this.baseUrl = (options.baseUrl ?? "https://localhost:5000/v1/api").replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.maxRetries = options.maxRetries ?? 2;
    this.retryBackoffMs = options.retryBackoffMs ?? 250;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 60_000;
    const url = new URL(this.baseUrl);
    // As the Python client: a gateway on this machine has a self-signed certificate; verify every other host.
    const local = url.protocol === "https:" && isLoopback(url.hostname);
    this.tlsOption = options.tls;
    this.tls = options.tls ?? (local ? { rejectUnauthorized: false } : undefined);
    this.pacer =
      limits !== undefined && options.pacing !== false
        ? sharedPacer(this.baseUrl, limits, options.pacingTimeScale ?? 1)
        : undefined;
    this.headers = { Accept: "application/json", "User-Agent": "ibkr-sdk-ts", ...options.headers };
  }

  /** Send `request` and return its decoded JSON answer (text when the answer is not JSON, null when empty). */
  async send(request: PreparedRequest): Promise<unknown> {
    return this.sendWith(request, {});
  }

  /** `send`, with `extra` headers on every attempt (the OAuth 2.0 bearer). */
  protected async sendWith(request: PreparedRequest, extra: Record<string, string>): Promise<unknown> {
    const query = new URLSearchParams(request.query).toString();
    const root = request.base === undefined ? this.baseUrl : new URL(this.baseUrl).origin + request.base;
    const url = root + request.path + (query ? `?${query}` : "");
    const headers = { ...this.headers, ...extra };
    for (let attempt = 0; ; attempt++) {
      let failure: IbkrHttpError;
      let wait = this.retryBackoffMs * 2 ** attempt;
      const encoded = this.encodeBody(request); // on every attempt: a signed body carries its own iat and exp
      const sent = encoded === undefined ? headers : { ...headers, "Content-Type": encoded.contentType };
      try {
        const exchange = () => this.exchange(url, request.http, sent, encoded?.payload);
        const answer = await (this.pacer ? this.pacer.slot(request.pacing, exchange) : exchange());
        const body = decode(answer);
        if (answer.status >= 200 && answer.status < 300) {
          if (body instanceof Error) throw new IbkrHttpError(request, answer.status, body.message);
          return body;
        }
        failure = new IbkrHttpError(request, answer.status, describe(body), body);
        if (answer.status !== 429 && answer.status < 500) throw failure;
        const after = retryAfterMs(answer.retryAfter);
        if (after !== undefined) {
          if (after > this.maxRetryAfterMs) throw failure;
          wait = after;
        }
      } catch (error) {
        if (error instanceof IbkrHttpError) throw error; // an answer that is not retried (4xx, a long Retry-After)
        failure = new IbkrHttpError(request, undefined, explain(error, url), undefined, error);
      }
      if (request.retry !== "safe" || attempt >= this.maxRetries) throw failure;
      await sleep(wait);
    }
  }

  /** The body of `request` as sent: JSON. */
  protected encodeBody(request: PreparedRequest): { payload: string; contentType: string } | undefined {
    if (request.body === undefined) return undefined;
    return { payload: JSON.stringify(request.body), contentType: "application/json" };
  }

  /**
   * One POST outside the catalogue (the OAuth 2.0 token and SSO session requests): not paced, never re-sent. TLS as
   * for the base URL: `tls` when given, else no verification on a loopback host only.
   */
  protected post(url: string, headers: Record<string, string>, payload: string): Promise<Answer> {
    const target = new URL(url);
    const local = target.protocol === "https:" && isLoopback(target.hostname);
    const tls = this.tlsOption ?? (local ? { rejectUnauthorized: false } : undefined);
    return this.exchange(url, "POST", { ...this.headers, ...headers }, payload, tls);
  }

  private async exchange(
    url: string,
    method: string,
    headers: Record<string, string>,
    payload: string | undefined,
    tls: TlsOptions | undefined = this.tls,
  ): Promise<Answer> {
    if (tls !== undefined && url.startsWith("https:")) {
      return httpsExchange(url, method, headers, payload, this.timeoutMs, tls);
    }
    const response = await fetch(url, { method, headers, body: payload, signal: AbortSignal.timeout(this.timeoutMs) });
    return {
      status: response.status,
      contentType: response.headers.get("content-type") ?? "",
      retryAfter: response.headers.get("retry-after"),
      text: await response.text(),
    };
  }
}

async function httpsExchange(
  url: string,
  method: string,
  headers: Record<string, string>,
  payload: string | undefined,
  timeoutMs: number,
  tls: TlsOptions,
): Promise<Answer> {
  const https = await import("node:https");
  const ca = typeof tls.ca === "string" || tls.ca === undefined ? tls.ca : Buffer.from(tls.ca);
  return new Promise((resolve, reject) => {
    const options = { method, headers, ca, rejectUnauthorized: tls.rejectUnauthorized ?? true };
    const req = https.request(url, options, (res) => {
      const chunks: Uint8Array[] = [];
      res.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers["content-type"] ?? ""),
          retryAfter: typeof res.headers["retry-after"] === "string" ? res.headers["retry-after"] : null,
          text: Buffer.concat(chunks).toString("utf8"),
        }),
      );
    });
    req.setTimeout(timeoutMs, () => {
      req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: "ETIMEDOUT" }));
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/** Milliseconds a `Retry-After` header asks for (seconds or an HTTP date); undefined when absent or unreadable. */
function retryAfterMs(value: string | null): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const when = Date.parse(value);
  return Number.isNaN(when) ? undefined : Math.max(0, when - Date.now());
}

/** The innermost error and its code: `fetch failed` hides the real failure in `cause`. */
function rootCause(error: unknown): { message: string; code: string | undefined } {
  let current: unknown = error;
  for (let i = 0; i < 5 && current instanceof Error && current.cause !== undefined; i++) current = current.cause;
  const code = (current as { code?: unknown } | null)?.code;
  const message = current instanceof Error ? current.message : String(current);
  return { message, code: typeof code === "string" ? code : undefined };
}

/** What went wrong on the network, with what to do about it where that is clear. */
function explain(error: unknown, url: string): string {
  const { message, code } = rootCause(error);
  const where = new URL(url).host;
  const text = code !== undefined && !message.includes(code) ? `${message} (${code})` : message;
  if (code === "ECONNREFUSED") return `${text}: nothing listens at ${where}; is the gateway running?`;
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER" || /wrong version number|packet length too long/i.test(message)) {
    return `${text}: the server at ${where} answered in plain HTTP, not TLS; use an http:// URL`;
  }
  if (code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) {
    return `${text}: the certificate of ${where} is not trusted; pass tls: { ca } with the gateway's certificate`;
  }
  if (code === "ETIMEDOUT" || (error instanceof Error && error.name === "TimeoutError")) {
    return `${text}: no answer from ${where} in time`;
  }
  return text;
}

/** The JSON value of an answer; its text when it is not JSON; an Error when it claims JSON and is not. */
function decode(answer: Answer): unknown {
  if (answer.text.trim() === "") return null;
  try {
    return JSON.parse(answer.text);
  } catch {
    return answer.contentType.includes("json") ? new Error("the answer is not valid JSON") : answer.text;
  }
}

function describe(body: unknown): string {
  if (body !== null && typeof body === "object" && "error" in body) return String(body.error);
  return typeof body === "string" ? body.slice(0, 200) : JSON.stringify(body)?.slice(0, 200) ?? "";
}
