"""Everything one simulator instance remembers. Two simulators never share any of it.

Session model (two levels, as on the real gateway):
- `logged_in`: the gateway's own (SSO) login. Without it every request answers 401. `/logout` ends it;
  `Simulator.login()` stands in for the browser login that starts it again.
- `brokerage`: the brokerage ("iserver") session. Without it `/iserver/...` requests answer
  400 `{"error": "Bad Request: no bridge"}` (never opened, or after a nightly reset) or 401 (dropped under a live
  login), except the auth status, `ssodh/init` and `reauthenticate` endpoints. `ssodh/init` and `reauthenticate`
  ask for it to open; it opens `open_delay` seconds later (the gateway answers before it is open), unless another
  login holds it (`competing`), which only `ssodh/init` with `compete=true` takes over.
- Endpoints whose catalogue entry names `receive_brokerage_accounts` as preflight (orders, snapshot, ...)
  answer 500 `{"error": "Please query /accounts first"}` until `/iserver/accounts` has been called in the
  current brokerage session.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..lib.endpoint import EndpointSpec
from . import _data
from ._book import Book
from ._core import GatewayError, SimRequest
from ._prices import PriceModel, Quote
from ._questions import QuestionRule
from ._universe import Contract, Universe

if TYPE_CHECKING:
    from ._alerts import Alert
    from ._allocation import AllocationBook
    from ._fyi import FyiState
    from ._models import ModelBook

NO_BRIDGE = "Bad Request: no bridge"
NOT_AUTHENTICATED = "not authenticated"
ACCOUNTS_FIRST = "Please query /accounts first"
_OPENS_BRIDGE = ("authentication_status", "initialize_brokerage_session", "reauthenticate")
_FIXTURES = (
    "accounts",
    "session",
    "marketdata",
    "contracts",
    "questions",
    "reference",
    "rules",
    "scanner",
    "alerts",
    "fyi",
    "forecast",
)


@dataclass
class PendingReply:
    """An order (or modification) waiting for answers to its questions."""

    kind: str  # "place" | "modify"
    account: str
    tickets: list[Any]  # parsed tickets (see _orders.Ticket)
    questions: list[tuple[str, str]]  # (message id, text) still to ask
    order_id: int | None = None


@dataclass(frozen=True)
class SessionEvent:
    """One change of the simulated session (`Simulator.session_events`)."""

    what: str
    time: float  # the simulated clock
    monotonic: float  # time.monotonic(): real time, also under a scaled clock


@dataclass
class Watchlist:
    id: str
    name: str
    rows: list[dict[str, Any]]
    modified: int
    hash: str


@dataclass
class SessionState:
    logged_in: bool = True
    brokerage: bool = True
    accounts_queried: bool = False
    selected_account: str = ""
    token: str = ""
    session_serial: int = 0
    hmds_ready: bool = False
    md_streams: dict[int, set[str]] = field(default_factory=dict)  # conid -> fields requested so far
    pnl_ready: bool = False  # the first partitioned P&L request of a session answers empty, as IBKR's does
    pending: dict[str, PendingReply] = field(default_factory=dict)
    suppressed: set[str] = field(default_factory=set)
    competing: bool = False  # another login holds the brokerage session
    refusal: int = 400  # how /iserver answers while the brokerage session is closed: 400 no bridge, or 401
    opening_at: float | None = None  # monotonic time a requested brokerage session opens
    closed_serial: int = 0  # counts closings of the brokerage session (sockets end their streams on a change)


class GatewayState:
    def __init__(
        self,
        *,
        accounts: Sequence[str],
        authenticated: bool,
        seed: int,
        clock: Callable[[], float],
        question_rules: list[QuestionRule],
        hmds_warmup: bool,
        advisor: bool = False,
    ) -> None:
        if not accounts:
            raise ValueError("the simulator needs at least one account id")
        if advisor and len(accounts) < 2:
            raise ValueError("an advisor simulator needs the advisor's account id and at least one sub-account")
        self.lock = threading.RLock()
        self.clock = clock
        self.seed = seed
        self.rng = random.Random(seed)
        self.account_ids = list(accounts)
        self.question_rules = question_rules
        self.hmds_warmup = hmds_warmup
        self.fixtures = {name: _data.load(name) for name in _FIXTURES}
        today = dt.datetime.fromtimestamp(clock(), dt.timezone.utc).date()
        self.universe = Universe(self.fixtures["contracts"], today)
        self.prices = PriceModel(self.universe, seed)
        self.book = Book(self.universe, self.prices, self.account_ids, self.fixtures["accounts"], self.rng)
        self.session = SessionState(
            brokerage=authenticated,
            selected_account=self.account_ids[0],
            token=f"{self.rng.getrandbits(128):032x}",
        )
        self.watchlists: dict[str, Watchlist] = {}
        self.regulatory_snapshots: list[int] = []  # conids of the billed /md/regsnapshot requests, in order
        self.alerts: dict[int, Alert] = {}  # by alert (order) id; the MTA alert apart
        self.mta: Alert | None = None  # made on first use (see _alerts.mta)
        self.fyi: FyiState | None = None  # made on first use (see _fyi.fyi)
        self.advisor = advisor  # the first account is a Financial Advisor's, the others its sub-accounts
        self.sub_accounts = self.account_ids[1:] if advisor else []
        self.allocation: AllocationBook | None = None  # made on first use (see _allocation.book)
        self.fa_models: ModelBook | None = None  # made on first use (see _models._book)
        self.started = clock()
        self.server_counter = self.rng.randrange(4_000_000, 5_000_000)
        self.open_delay = 0.2  # seconds (real time) between ssodh/init and an open brokerage session
        self.session_log: list[SessionEvent] = []

    # -- helpers for handlers -------------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def new_id(self) -> str:
        """A reply id in IBKR's form (a version-4 UUID), reproducible for a given seed."""
        bits = self.rng.getrandbits(128)
        bits = (bits & ~(0xF000 << 64)) | (0x4000 << 64)
        bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)
        text = f"{bits:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    def next_server_id(self) -> str:
        self.server_counter += 1
        return str(self.server_counter)

    def contract(self, conid: Any) -> Contract:
        try:
            key = int(str(conid).split("@")[0])
        except ValueError:
            raise GatewayError(400, f"Bad Request: invalid conid {conid!r}") from None
        contract = self.universe.get(key)
        if contract is None:
            raise GatewayError(400, f"Bad Request: unknown conid {key} (not in the simulator's universe)")
        return contract

    def account(self, account_id: str | None) -> str:
        acct = account_id or self.session.selected_account
        if acct not in self.book.accounts:
            raise GatewayError(400, f"Bad Request: account {acct} is not one of {', '.join(self.account_ids)}")
        return acct

    def quote(self, contract: Contract) -> Quote:
        return self.prices.quote(contract, self.now())

    # -- session transitions --------------------------------------------------------------------------------------

    def note(self, what: str) -> None:
        if len(self.session_log) < 10_000:
            self.session_log.append(SessionEvent(what, self.clock(), time.monotonic()))

    def open_brokerage(self) -> None:
        s = self.session
        s.opening_at = None
        s.competing = False
        if s.brokerage:
            return
        self.note("opened")
        s.brokerage = True
        s.session_serial += 1
        s.accounts_queried = False
        s.hmds_ready = False
        s.md_streams.clear()
        s.pnl_ready = False
        s.pending.clear()
        s.suppressed.clear()

    def request_brokerage(self, compete: bool) -> None:
        """`ssodh/init` or `reauthenticate`: the session opens `open_delay` seconds from now, unless another login
        holds it and `compete` is false."""
        s = self.session
        if s.brokerage or (s.competing and not compete):
            return
        if compete:
            s.competing = False
        if self.open_delay <= 0:
            self.open_brokerage()
        elif s.opening_at is None:
            s.opening_at = time.monotonic() + self.open_delay

    def settle(self) -> None:
        """Open a requested brokerage session whose time has come (called on every request and socket cycle)."""
        s = self.session
        if s.opening_at is not None and time.monotonic() >= s.opening_at and s.logged_in:
            self.open_brokerage()

    def close_brokerage(self, refusal: int = 400, why: str = "dropped") -> None:
        s = self.session
        s.opening_at = None
        s.refusal = refusal
        self.note(why)
        if s.brokerage:
            s.brokerage = False
            s.closed_serial += 1

    def compete(self, active: bool) -> None:
        """Another login takes the brokerage session (`active`), or leaves it again (the session stays closed)."""
        if active:
            self.close_brokerage(401, "competing")
        else:
            self.note("competition ended")
        self.session.competing = active

    def logout(self, why: str = "logged out") -> None:
        self.session.logged_in = False
        self.session.competing = False
        self.close_brokerage(400, why)

    def login(self, brokerage: bool) -> None:
        self.note("logged in")
        self.session.logged_in = True
        self.session.token = f"{self.rng.getrandbits(128):032x}"
        if brokerage:
            self.open_brokerage()

    def restart(self) -> None:
        """A fresh gateway process: no login, no brokerage session (orders and positions live on at IBKR)."""
        self.logout("restarted")
        self.session.token = f"{self.rng.getrandbits(128):032x}"
        self.session.accounts_queried = False

    # -- the checks every modelled request passes -----------------------------------------------------------------

    def admit(self, spec: EndpointSpec, request: SimRequest) -> None:
        self.settle()
        s = self.session
        if not s.logged_in:
            raise GatewayError(401, NOT_AUTHENTICATED)
        if request.path.startswith("/iserver/") and not s.brokerage and spec.name not in _OPENS_BRIDGE:
            raise GatewayError(401, NOT_AUTHENTICATED) if s.refusal == 401 else GatewayError(400, NO_BRIDGE)
        if "receive_brokerage_accounts" in spec.preflight and not s.accounts_queried:
            raise GatewayError(500, ACCOUNTS_FIRST)
