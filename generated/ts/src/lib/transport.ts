// Copied by codegen from handwritten/ts/transport.ts, the hand-written part of this package.
// Do not edit here: edit handwritten/ts/, then run `make generate`.
/**
 * How a prepared request travels: base URL, timeout, retries of requests the catalogue marks safe, and TLS for the
 * gateway's self-signed certificate. The one hand-written module of the TypeScript client; everything that the
 * catalogue describes (methods, argument checks, wire encoding, response types) is generated.
 *
 * Retry policy: a `safe` request is re-sent after a network error, a timeout, HTTP 429 or 5xx, with exponential
 * backoff, at most `maxRetries` times. An `unsafe` request (orders, replies, cancels, writes) is never re-sent.
 */

export interface TlsOptions {
  /** PEM certificate(s) to trust, e.g. the gateway's self-signed one. */
  ca?: string | Buffer;
  /** `false` accepts any certificate: only for a gateway on localhost that you run yourself. */
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
  /** Certificate checks; when given, requests go through `node:https` (Node's `fetch` takes no CA per request). */
  tls?: TlsOptions;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
}

/** A validated request, as the generated wire code builds it. */
export interface PreparedRequest {
  /** The catalogue name of the endpoint, e.g. `live_marketdata_snapshot`. */
  readonly endpoint: string;
  readonly http: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Another base path on the same host as `baseUrl` (`/gw/api/v1`); absent: below `baseUrl`. */
  readonly base?: string;
  /** Path below the base URL, placeholders filled. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** JSON body, or `undefined` when none is sent. */
  readonly body: unknown;
  readonly retry: "safe" | "unsafe";
}

export class IbkrError extends Error {
  override name = "IbkrError";
}

/** A request failed: an HTTP error status (`status`), or no usable answer at all (`status` undefined). */
export class IbkrHttpError extends IbkrError {
  override name = "IbkrHttpError";
  constructor(
    readonly request: PreparedRequest,
    readonly status: number | undefined,
    detail: string,
    readonly body?: unknown,
  ) {
    const what = status === undefined ? "no answer" : `HTTP ${status}`;
    super(`${request.endpoint}: ${what} from ${request.http} ${request.path}: ${detail}`);
  }
}

interface Answer {
  status: number;
  contentType: string;
  text: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class Transport {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly maxRetries: number;
  readonly retryBackoffMs: number;
  private readonly tls: TlsOptions | undefined;
  private readonly headers: Record<string, string>;

  constructor(options: TransportOptions = {}) {
    this.baseUrl = (options.baseUrl ?? "https://localhost:5000/v1/api").replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.maxRetries = options.maxRetries ?? 2;
    this.retryBackoffMs = options.retryBackoffMs ?? 250;
    this.tls = options.tls;
    this.headers = { Accept: "application/json", "User-Agent": "ibkr-sdk-ts", ...options.headers };
  }

  /** Send `request` and return its decoded JSON answer (text when the answer is not JSON, null when empty). */
  async send(request: PreparedRequest): Promise<unknown> {
    const query = new URLSearchParams(request.query).toString();
    const root = request.base === undefined ? this.baseUrl : new URL(this.baseUrl).origin + request.base;
    const url = root + request.path + (query ? `?${query}` : "");
    const headers = { ...this.headers };
    let payload: string | undefined;
    if (request.body !== undefined) {
      payload = JSON.stringify(request.body);
      headers["Content-Type"] = "application/json";
    }
    for (let attempt = 0; ; attempt++) {
      let failure: IbkrHttpError;
      try {
        const answer = await this.exchange(url, request.http, headers, payload);
        const body = decode(answer);
        if (answer.status >= 200 && answer.status < 300) {
          if (body instanceof Error) throw new IbkrHttpError(request, answer.status, body.message);
          return body;
        }
        failure = new IbkrHttpError(request, answer.status, describe(body), body);
        if (answer.status !== 429 && answer.status < 500) throw failure;
      } catch (error) {
        if (error instanceof IbkrHttpError && error.status !== undefined && error.status < 500) throw error;
        failure =
          error instanceof IbkrHttpError ? error : new IbkrHttpError(request, undefined, (error as Error).message);
      }
      if (request.retry !== "safe" || attempt >= this.maxRetries) throw failure;
      await sleep(this.retryBackoffMs * 2 ** attempt);
    }
  }

  private async exchange(
    url: string,
    method: string,
    headers: Record<string, string>,
    payload: string | undefined,
  ): Promise<Answer> {
    if (this.tls !== undefined && url.startsWith("https:")) {
      return httpsExchange(url, method, headers, payload, this.timeoutMs, this.tls);
    }
    const response = await fetch(url, { method, headers, body: payload, signal: AbortSignal.timeout(this.timeoutMs) });
    return {
      status: response.status,
      contentType: response.headers.get("content-type") ?? "",
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
  return new Promise((resolve, reject) => {
    const options = { method, headers, ca: tls.ca, rejectUnauthorized: tls.rejectUnauthorized ?? true };
    const req = https.request(url, options, (res) => {
      const chunks: Uint8Array[] = [];
      res.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers["content-type"] ?? ""),
          text: Buffer.concat(chunks).toString("utf8"),
        }),
      );
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(payload);
  });
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
