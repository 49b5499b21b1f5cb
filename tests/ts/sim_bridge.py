"""The gateway simulator for the TypeScript tests (`node --test`), with a small control server beside it.

Started by tests/ts/wire.test.ts as `python tests/ts/sim_bridge.py`; prints one JSON line with the URLs, then serves
until its stdin closes (the Node process ended) or a time limit passes. Both servers listen on 127.0.0.1 only.

Control routes (JSON): `GET /cases` every catalogue example with TypeScript names (the same cases as
tests/test_wire.py); `POST /reset` logs the simulator in and clears its request log; `GET /requests` what the
simulator received since; `POST /inject` `{route, kind, value, times}` a fault (`Simulator.inject`). The same
routes under `/paced/` serve a second simulator that enforces IBKR's pacing (429 beyond it), its periods scaled by
`PACED_SCALE`.

With `--oauth2` (tests/ts/oauth2.test.ts) it starts one simulator acting as IBKR's hosted API with OAuth 2.0 over
HTTPS instead, and prints its client settings (ids, username, the simulator's public test key, URLs, scope, CA
certificate). Its routes: `POST /reset` a new OAuth 2.0 authority (no tokens, no sessions, counters at zero) and an
empty request log; `GET /requests` the log with each request's base path, `authorization` and `contentType`;
`GET /oauth2` what the authority received and issued; `POST /oauth2/expire` `{what: access|sessions|all}`;
`POST /oauth2/lifetime` `{seconds}` the `expires_in` of the next access tokens.
"""

from __future__ import annotations

import datetime
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from codegen.load import load_catalogue  # noqa: E402
from codegen.ts import ts_name  # noqa: E402
from ibkr_sdk.simulator import Simulator  # noqa: E402

TIME_LIMIT = 120.0  # seconds: the bridge never outlives a stuck test run
PACED_SCALE = 0.3  # IBKR's pacing periods, scaled: 10 per 0.3 s globally, one tickle per 0.3 s, ...


def _jsonable(value: Any) -> Any:
    """Example arguments as JSON; a datetime becomes {"$date": ISO 8601 in UTC} (the TS test makes a Date of it)."""
    if isinstance(value, datetime.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
        return {"$date": aware.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def cases() -> list[dict[str, Any]]:
    import ibkr_sdk.simulator._server  # noqa: F401  (registers the handlers)
    from ibkr_sdk.simulator._core import HANDLERS

    cat = load_catalogue(ROOT / "spec")
    return [
        {
            "id": f"{e.name}[{i}]",
            "endpoint": e.name,
            "area": ts_name(e.area),
            "method": ts_name(e.name),
            "modelled": e.name in HANDLERS,
            "call": {ts_name(k): _jsonable(v) for k, v in ex.call.items()},
            "expect": {"method": ex.method, "path": ex.path, "query": ex.query, "body": ex.body},
        }
        for e in cat.endpoints
        for i, ex in enumerate(e.examples)
    ]


class _Json(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _send(self, value: Any, status: int = 200) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _payload(self) -> Any:
        size = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(size) or b"{}")


def _serve(control: ThreadingHTTPServer, info: dict[str, Any], sims: list[Simulator]) -> None:
    """Print `info`, then serve until stdin closes or the time limit passes; stop everything."""
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print(json.dumps({**info, "control": f"http://127.0.0.1:{control.server_address[1]}"}), flush=True)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait(TIME_LIMIT)
    control.shutdown()
    for s in sims:
        s.stop()


def main_oauth2() -> None:
    from ibkr_sdk.simulator import OAuth2Authority, OAuth2Settings
    from ibkr_sdk.simulator._oauth2 import simulator_private_key_pem

    sim = Simulator(oauth2=True, https=True).start()

    def authority() -> OAuth2Authority:
        assert sim.oauth2 is not None
        return sim.oauth2

    class Control(_Json):
        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/requests":
                self._send(
                    [
                        {
                            "endpoint": r.endpoint,
                            "method": r.method,
                            "base": r.base,
                            "path": r.path,
                            "status": r.status,
                            "authorization": r.headers.get("authorization"),
                            "contentType": r.headers.get("content-type"),
                        }
                        for r in sim.requests
                    ]
                )
            elif self.path == "/oauth2":
                a = authority()
                self._send(
                    {
                        "tokensIssued": a.tokens_issued,
                        "sessionsOpened": a.sessions_opened,
                        "assertions": [{"header": h, "claims": c} for h, c in a.assertions],
                        "sessionClaims": a.session_claims,
                        "issued": a.issued,
                        "receivedJwts": a.received_jwts,
                    }
                )
            else:
                self._send({"error": "unknown route"}, 404)

        def do_POST(self) -> None:  # noqa: N802
            payload = self._payload()
            if self.path == "/reset":
                sim.oauth2 = OAuth2Authority(OAuth2Settings())
                sim.clear_faults()
                sim.clear_requests()
                self._send({"ok": True})
            elif self.path == "/oauth2/expire":
                expire = {"access": "expire_access_tokens", "sessions": "expire_sessions", "all": "expire_all"}
                getattr(authority(), expire[payload["what"]])()
                self._send({"ok": True})
            elif self.path == "/oauth2/lifetime":
                authority().settings.access_token_lifetime_s = float(payload["seconds"])
                self._send({"ok": True})
            else:
                self._send({"error": "unknown route"}, 404)

    settings = authority().settings
    info = {
        "url": sim.url,
        "tokenUrl": sim.token_url,
        "ssoSessionUrl": sim.gw_url + "sso-sessions",
        "clientId": settings.client_id,
        "clientKeyId": settings.kid,
        "username": settings.username,
        "privateKey": simulator_private_key_pem(),
        "scope": " ".join(settings.scopes),
        "cacert": Path(sim.cacert).read_text("ascii"),
    }
    _serve(ThreadingHTTPServer(("127.0.0.1", 0), Control), info, [sim])


def main() -> None:
    if "--oauth2" in sys.argv[1:]:
        main_oauth2()
        return
    sim = Simulator().start()
    secure = Simulator(https=True).start()
    paced = Simulator(pacing=True, pacing_time_scale=PACED_SCALE).start()
    all_cases = cases()

    class Control(_Json):
        def _target(self) -> tuple[Simulator, str]:
            if self.path.startswith("/paced/"):
                return paced, self.path[len("/paced") :]
            return sim, self.path

        def do_GET(self) -> None:  # noqa: N802
            target, path = self._target()
            if path == "/cases":
                self._send(all_cases)
            elif path == "/requests":
                self._send(
                    [
                        {
                            "endpoint": r.endpoint,
                            "method": r.method,
                            "path": r.path,
                            "query": r.query,
                            "body": r.body,
                            "status": r.status,
                        }
                        for r in target.requests
                    ]
                )
            else:
                self._send({"error": "unknown route"}, 404)

        def do_POST(self) -> None:  # noqa: N802
            payload = self._payload()
            target, path = self._target()
            if path == "/reset":
                target.clear_faults()
                target.login()
                target.clear_requests()
                self._send({"ok": True})
            elif path == "/inject":
                target.inject(payload["route"], payload["kind"], payload.get("value"), times=payload.get("times", 1))
                self._send({"ok": True})
            else:
                self._send({"error": "unknown route"}, 404)

    info = {
        "sim": sim.url,
        "secure": secure.url,
        "paced": paced.url,
        "pacedScale": PACED_SCALE,
        "cacert": secure.cacert,
    }
    _serve(ThreadingHTTPServer(("127.0.0.1", 0), Control), info, [paced, secure, sim])


if __name__ == "__main__":
    main()
