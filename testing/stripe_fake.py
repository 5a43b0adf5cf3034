"""A stateful fake of Stripe's API, plugged into the real SDK as its HTTP client (SPEC §8).

    fake = FakeStripe()
    client = stripe.StripeClient("sk_test_fake", http_client=fake.http_client())

Tests and the demo use it because no network reaches Stripe here; ``stripe_server`` serves it
over HTTP to other processes. It keeps customers,
invoices, invoice items and credit notes; finalize, pay, void and mark-uncollectible move
invoices the way Stripe does; idempotency keys are honoured as Stripe does (same key and same
parameters: the first response, replayed; same key, other parameters: a 400
``idempotency_error``); parameters that the SDK's own ``stripe.params`` TypedDicts do not
list are refused with Stripe's "Received unknown parameter". Faults can be injected: ``500``
(not applied), ``409`` (not applied) and ``lost`` (applied and its result saved, then the
connection drops). Every state change records an event; ``signed_webhook`` signs it with the
SDK's own signature scheme.

Persistent state (issue 15): with a ``store`` (``RedisStore``), every request runs under
the store's lock on the state loaded from it and saves it back, so the state outlives the
process that serves the fake (``stripe_server``) and every ``FakeStripe`` on the same store
sees one Stripe. Call ``refresh()`` before reading the attributes of a stored fake.

Faithful where it matters: finalizing an invoice whose total is negative is refused (Stripe
never has a negative amount due); an invoice finalized at 0 is paid at once (Stripe marks a
zero invoice paid at finalization, with ``invoice.paid``).
"""

import contextlib
import functools
import itertools
import json
import re
import sys
import threading
import time
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe
import typing_extensions
from stripe import params as sp
from stripe._request_options import RequestOptions

REQUEST_OPTIONS = set(RequestOptions.__annotations__)


@dataclass
class Fault:
    kind: str  # "500" | "409" | "lost"
    method: str
    path: re.Pattern[str]
    times: int = 1


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    params: type
    handler: Callable[..., dict[str, Any]]


class StripeFakeError(Exception):
    def __init__(self, status: int, type_: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type_, "message": message}}
        if param:
            self.body["error"]["param"] = param


def _unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``a[b][0][c]=1`` form encoding back into nested dicts and lists."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        parts = re.findall(r"[^\[\]]+", raw_key)
        node: Any = root
        for part, following in itertools.zip_longest(parts, parts[1:]):
            last = following is None
            key: Any = int(part) if isinstance(node, list) else part
            if isinstance(node, list):
                while len(node) <= key:
                    node.append(None)
            if last:
                node[key] = value
            else:
                child = node[key] if (isinstance(node, list) or key in node) else None
                if child is None:
                    child = [] if following.isdigit() else {}
                    node[key] = child
                node = child
    return root


@functools.cache
def _fields(cls: type) -> dict[str, type | None]:
    """A params TypedDict's keys, each with the TypedDict its value must match (None: a
    scalar, a list of scalars or free-form metadata). Annotations are forward references in
    strings, so the nested TypedDict is looked up by name in the defining module."""
    module = vars(sys.modules[cls.__module__])
    fields: dict[str, type | None] = {}
    for name, annotation in cls.__annotations__.items():
        nested = None
        for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", str(annotation)):
            candidate = module.get(word)
            if isinstance(candidate, type) and typing_extensions.is_typeddict(candidate):
                nested = candidate
                break
        fields[name] = nested
    return fields


def unknown_parameter(params: dict[str, Any], cls: type) -> str | None:
    """The first parameter ``cls`` does not list, named like Stripe's ``param``
    (``automatic_tax[nope]``, ``lines[0][nope]``)."""
    path = _unknown(params, cls, top=True)
    return path[0] + "".join(f"[{p}]" for p in path[1:]) if path else None


def _unknown(params: dict[str, Any], cls: type, *, top: bool = False) -> list[str] | None:
    fields = _fields(cls)
    for name, value in params.items():
        if name not in fields or (top and name in REQUEST_OPTIONS):
            return [name]
        nested = fields[name]
        if nested is None:
            continue
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if isinstance(item, dict):
                bad = _unknown(item, nested)
                if bad:
                    return [name, str(index), *bad] if isinstance(value, list) else [name, *bad]
    return None


class FakeHttpClient(stripe.HTTPClient):
    """The SDK's transport, answered by a ``FakeStripe`` in-process."""

    name = "tessera-fake"

    def __init__(self, fake: "FakeStripe") -> None:
        super().__init__()
        self.fake = fake

    def request(
        self,
        method: str,
        url: str,
        headers: typing.Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, typing.Mapping[str, str]]:
        return self.fake.handle(method, url, dict(headers or {}), post_data)

    def close(self) -> None:
        return None


class RedisStore:
    """The fake's state as one JSON value in Redis, changed under a Redis lock."""

    def __init__(self, url: str, key: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url)
        self.key = key

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self.redis.lock(f"{self.key}:lock", timeout=60, blocking_timeout=60):
            yield

    def load(self) -> dict[str, Any] | None:
        raw = self.redis.get(self.key)
        return json.loads(raw) if raw else None

    def save(self, state: dict[str, Any]) -> None:
        self.redis.set(self.key, json.dumps(state))

    def clear(self) -> None:
        self.redis.delete(self.key)


STATE_FIELDS = ("customers", "invoices", "invoice_items", "credit_notes", "events", "requests")


@dataclass
class FakeStripe:
    webhook_secret: str = "whsec_tessera_fake"
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoice_items: dict[str, dict[str, Any]] = field(default_factory=dict)
    credit_notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    # Every request that reached the API (after faults that stop it): (method, path, params).
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    _idempotency: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    _next_id: int = 1
    _lock: threading.RLock = field(default_factory=threading.RLock)
    # Shared state (``RedisStore``); None: this process's memory only.
    store: RedisStore | None = None
    _depth: int = 0

    def __post_init__(self) -> None:
        one = "/(?P<id>[A-Za-z0-9_]+)"
        table: list[tuple[str, str, type, Callable[..., dict[str, Any]]]] = [
            ("post", "/v1/customers", sp.CustomerCreateParams, self._customer_create),
            ("get", "/v1/customers" + one, sp.CustomerRetrieveParams, self._customer_get),
            ("post", "/v1/invoices", sp.InvoiceCreateParams, self._invoice_create),
            ("get", "/v1/invoices", sp.InvoiceListParams, self._invoice_list),
            ("get", "/v1/invoices" + one, sp.InvoiceRetrieveParams, self._invoice_get),
            ("post", "/v1/invoices" + one + "/finalize", sp.InvoiceFinalizeInvoiceParams,
             self._invoice_finalize),
            ("post", "/v1/invoices" + one + "/pay", sp.InvoicePayParams, self._invoice_pay),
            ("post", "/v1/invoices" + one + "/void", sp.InvoiceVoidInvoiceParams,
             self._invoice_void),
            ("post", "/v1/invoices" + one + "/mark_uncollectible",
             sp.InvoiceMarkUncollectibleParams, self._invoice_uncollectible),
            ("post", "/v1/invoiceitems", sp.InvoiceItemCreateParams, self._item_create),
            ("get", "/v1/invoiceitems", sp.InvoiceItemListParams, self._item_list),
            ("post", "/v1/credit_notes", sp.CreditNoteCreateParams, self._credit_note_create),
            ("get", "/v1/credit_notes", sp.CreditNoteListParams, self._credit_note_list),
        ]  # fmt: skip
        self.routes = [Route(m, re.compile(p), params, h) for m, p, params, h in table]

    # --- shared state ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Run a change on the current state: under the store's lock, loaded before and saved
        after (re-entrant); without a store, under the process's lock."""
        with self._lock:
            if self.store is None or self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with self.store.locked():
                self._load(self.store.load())
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                    self.store.save(self._state())

    def refresh(self) -> "FakeStripe":
        """Load the shared state (what another process did); no-op without a store."""
        if self.store is not None:
            with self._lock:
                self._load(self.store.load())
        return self

    def reset(self) -> None:
        """Forget everything (a fresh Stripe account), in the store too."""
        with self._lock:
            self._load(None)
            if self.store is not None:
                self.store.clear()

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: getattr(self, name) for name in STATE_FIELDS}
        state["idempotency"] = self._idempotency
        state["next_id"] = self._next_id
        state["faults"] = [[f.kind, f.method, f.path.pattern, f.times] for f in self.faults]
        return state

    def _load(self, state: dict[str, Any] | None) -> None:
        state = state or {}
        for name in STATE_FIELDS:
            setattr(self, name, state.get(name, [] if name in ("events", "requests") else {}))
        self.requests = [tuple(r) for r in self.requests]  # type: ignore[misc]
        self._idempotency = {k: tuple(v) for k, v in state.get("idempotency", {}).items()}
        self._next_id = state.get("next_id", 1)
        self.faults = [Fault(k, m, re.compile(p), t) for k, m, p, t in state.get("faults", [])]

    def _next(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    # --- wiring ---------------------------------------------------------------------------

    def http_client(self) -> FakeHttpClient:
        return FakeHttpClient(self)

    def client(self, api_key: str = "sk_test_tessera_fake", **kwargs: Any) -> stripe.StripeClient:
        kwargs.setdefault("max_network_retries", 0)
        return stripe.StripeClient(api_key, http_client=self.http_client(), **kwargs)

    def inject(self, kind: str, *, method: str = "post", path: str = r".*", times: int = 1) -> None:
        """Make the next ``times`` requests matching ``method`` and the ``path`` regex fail:
        ``500`` or ``409`` (not applied), ``lost`` (applied, then the connection drops)."""
        if kind not in {"500", "409", "lost"}:
            raise ValueError(kind)
        with self._locked():
            self.faults.append(Fault(kind, method.lower(), re.compile(path), times))

    def clear_faults(self) -> None:
        with self._locked():
            self.faults = []

    # --- the API --------------------------------------------------------------------------

    def handle(
        self, method: str, url: str, headers: dict[str, str], post_data: Any
    ) -> tuple[str, int, dict[str, str]]:
        method = method.lower()
        parts = urlsplit(url)
        path = parts.path
        raw = post_data if method == "post" else parts.query
        if isinstance(raw, bytes):
            raw = raw.decode()
        params = _unflatten(parse_qsl(raw or "", keep_blank_values=True))
        key = next((v for k, v in headers.items() if k.lower() == "idempotency-key"), None)
        with self._locked():
            fault = self._take_fault(method, path)
            if fault == "500":
                return self._error(StripeFakeError(500, "api_error", "Injected server error."))
            if fault == "409":
                return self._error(
                    StripeFakeError(409, "invalid_request_error", "Injected conflict (lock).")
                )
            fingerprint = json.dumps([method, path, params], sort_keys=True)
            if key and method == "post" and key in self._idempotency:
                seen, status, body = self._idempotency[key]
                if seen != fingerprint:
                    return self._error(
                        StripeFakeError(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            f"parameters they were first used with. Try using a key other "
                            f"than '{key}' if you meant to execute a different request.",
                        )
                    )
                result = (body, status, {"Idempotent-Replayed": "true", "Request-Id": "req_r"})
            else:
                result = self._execute(method, path, params)
                if key and method == "post" and result[1] < 500:
                    self._idempotency[key] = (fingerprint, result[1], result[0])
        if fault == "lost":
            raise stripe.APIConnectionError(
                "Injected fault: the request was applied but its response was lost.",
                should_retry=True,
            )
        return result

    def _take_fault(self, method: str, path: str) -> str | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and fault.path.search(path):
                fault.times -= 1
                return fault.kind
        return None

    def _execute(self, method: str, path: str, params: dict[str, Any]) -> tuple[str, int, dict]:
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if route.method != method or match is None:
                continue
            bad = unknown_parameter(params, route.params)
            if bad:
                return self._error(
                    StripeFakeError(
                        400, "invalid_request_error", f"Received unknown parameter: {bad}", bad
                    )
                )
            try:
                body = route.handler(params, **match.groupdict())
            except StripeFakeError as exc:
                return self._error(exc)
            self.requests.append((method, path, params))
            return json.dumps(body), 200, {"Request-Id": f"req_{self._next()}"}
        return self._error(
            StripeFakeError(404, "invalid_request_error", f"Unrecognized request URL ({path}).")
        )

    @staticmethod
    def _error(exc: StripeFakeError) -> tuple[str, int, dict[str, str]]:
        return json.dumps(exc.body), exc.status, {"Request-Id": "req_error"}

    def _id(self, prefix: str) -> str:
        return f"{prefix}_fake{self._next():06d}"

    def _event(self, type_: str, obj: dict[str, Any]) -> None:
        self.events.append(
            {
                "id": self._id("evt"),
                "object": "event",
                "type": type_,
                "created": int(time.time()),
                "livemode": False,
                "api_version": stripe.api_version,
                "data": {"object": json.loads(json.dumps(obj))},
            }
        )

    def _get(self, store: dict[str, dict[str, Any]], id: str, what: str) -> dict[str, Any]:
        if id not in store:
            raise StripeFakeError(404, "invalid_request_error", f"No such {what}: '{id}'", "id")
        return store[id]

    # customers
    def _customer_create(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = {
            "id": self._id("cus"),
            "object": "customer",
            "name": params.get("name"),
            "email": params.get("email"),
            "address": params.get("address"),
            "metadata": params.get("metadata", {}),
            "created": int(time.time()),
            "livemode": False,
        }
        self.customers[customer["id"]] = customer
        return customer

    def _customer_get(self, params: dict[str, Any], id: str) -> dict[str, Any]:
        return self._get(self.customers, id, "customer")

    # invoices
    def _invoice_create(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = self._get(self.customers, params.get("customer", ""), "customer")
        if params.get("collection_method") == "send_invoice" and not (
            params.get("days_until_due") or params.get("due_date")
        ):
            raise StripeFakeError(
                400, "invalid_request_error", "send_invoice needs days_until_due or due_date"
            )
        invoice = {
            "id": self._id("in"),
            "object": "invoice",
            "customer": customer["id"],
            "currency": params.get("currency", "usd"),
            "status": "draft",
            "number": params.get("number"),
            "collection_method": params.get("collection_method", "charge_automatically"),
            "days_until_due": int(params["days_until_due"]) if "days_until_due" in params else None,
            "description": params.get("description"),
            "metadata": params.get("metadata", {}),
            "auto_advance": params.get("auto_advance") == "true",
            "total": 0,
            "amount_due": 0,
            "amount_paid": 0,
            "lines": {"object": "list", "data": [], "has_more": False, "url": "/v1/invoices"},
            "created": int(time.time()),
            "livemode": False,
        }
        self.invoices[invoice["id"]] = invoice
        self._event("invoice.created", invoice)
        return invoice

    def _invoice_get(self, params: dict[str, Any], id: str) -> dict[str, Any]:
        return self._get(self.invoices, id, "invoice")

    def _invoice_list(self, params: dict[str, Any]) -> dict[str, Any]:
        rows = [
            i
            for i in self.invoices.values()
            if ("customer" not in params or i["customer"] == params["customer"])
            and ("status" not in params or i["status"] == params["status"])
        ]
        return {"object": "list", "data": rows, "has_more": False, "url": "/v1/invoices"}

    def _invoice_finalize(self, params: dict[str, Any], id: str) -> dict[str, Any]:
        invoice = self._get(self.invoices, id, "invoice")
        if invoice["status"] != "draft":
            raise StripeFakeError(
                400, "invalid_request_error", f"This invoice is already {invoice['status']}."
            )
        items = [i for i in self.invoice_items.values() if i["invoice"] == id]
        total = sum(i["amount"] for i in items)
        if total < 0:
            # Stripe never has a negative amount due (it would go to the customer balance).
            raise StripeFakeError(
                400, "invalid_request_error",
                f"The invoice total ({total}) cannot be negative.", "amount_due",
            )  # fmt: skip
        invoice["lines"]["data"] = items
        invoice["total"] = invoice["amount_due"] = total
        invoice["status"] = "open"
        if not invoice["number"]:
            invoice["number"] = f"FAKE-{len(self.invoices):04d}"
        self._event("invoice.finalized", invoice)
        if total == 0:
            # As Stripe does: nothing to collect, the invoice is paid at finalization.
            invoice["status"] = "paid"
            invoice["amount_paid"] = 0
            self._event("invoice.paid", invoice)
        return invoice

    def _invoice_pay(self, params: dict[str, Any], id: str) -> dict[str, Any]:
        invoice = self._get(self.invoices, id, "invoice")
        if invoice["status"] not in ("open", "uncollectible"):
            raise StripeFakeError(
                400, "invalid_request_error", f"Invoice is {invoice['status']}; cannot pay."
            )
        invoice["status"] = "paid"
        invoice["amount_paid"] = invoice["amount_due"]
        self._event("invoice.paid", invoice)
        return invoice

    def _invoice_void(self, params: dict[str, Any], id: str) -> dict[str, Any]:
        invoice = self._get(self.invoices, id, "invoice")
        if invoice["status"] not in ("open", "uncollectible"):
            raise StripeFakeError(
                400, "invalid_request_error", f"Invoice is {invoice['status']}; cannot void."
            )
        invoice["status"] = "void"
        self._event("invoice.voided", invoice)
        return invoice

    def _invoice_uncollectible(self, params: dict[str, Any], id: str) -> dict[str, Any]:
        invoice = self._get(self.invoices, id, "invoice")
        if invoice["status"] != "open":
            raise StripeFakeError(400, "invalid_request_error", f"Invoice is {invoice['status']}.")
        invoice["status"] = "uncollectible"
        self._event("invoice.marked_uncollectible", invoice)
        return invoice

    def payment_failed(self, invoice_id: str) -> None:
        """A failed charge attempt (as Stripe's collection would report it)."""
        with self._locked():
            self._event("invoice.payment_failed", self.invoices[invoice_id])

    # invoice items
    def _item_create(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = self._get(self.customers, params.get("customer", ""), "customer")
        invoice_id = params.get("invoice")
        if invoice_id:
            invoice = self._get(self.invoices, invoice_id, "invoice")
            if invoice["status"] != "draft":
                raise StripeFakeError(
                    400, "invalid_request_error", "Items can only be added to a draft invoice."
                )
        if "amount" not in params:
            raise StripeFakeError(400, "invalid_request_error", "Missing amount", "amount")
        item = {
            "id": self._id("ii"),
            "object": "invoiceitem",
            "customer": customer["id"],
            "invoice": invoice_id,
            "amount": int(params["amount"]),
            "currency": params.get("currency"),
            "description": params.get("description"),
            "metadata": params.get("metadata", {}),
            "livemode": False,
        }
        self.invoice_items[item["id"]] = item
        return item

    def _item_list(self, params: dict[str, Any]) -> dict[str, Any]:
        rows = [
            i
            for i in self.invoice_items.values()
            if "invoice" not in params or i["invoice"] == params["invoice"]
        ]
        return {"object": "list", "data": rows, "has_more": False, "url": "/v1/invoiceitems"}

    # credit notes
    def _credit_note_create(self, params: dict[str, Any]) -> dict[str, Any]:
        invoice = self._get(self.invoices, params.get("invoice", ""), "invoice")
        if invoice["status"] not in ("open", "paid"):
            raise StripeFakeError(
                400, "invalid_request_error", "Credit notes need an open or paid invoice."
            )
        if "lines" in params:
            amount = sum(
                int(line.get("unit_amount", 0)) * int(line.get("quantity", 1))
                for line in params["lines"]
            )
        else:
            amount = int(params.get("amount", 0))
        credited = sum(
            c["amount"] for c in self.credit_notes.values() if c["invoice"] == invoice["id"]
        )
        if amount <= 0 or credited + amount > invoice["total"]:
            raise StripeFakeError(
                400, "invalid_request_error", "The credit note exceeds the invoice's total."
            )
        note = {
            "id": self._id("cn"),
            "object": "credit_note",
            "invoice": invoice["id"],
            "customer": invoice["customer"],
            "amount": amount,
            "currency": invoice["currency"],
            "memo": params.get("memo"),
            "reason": params.get("reason"),
            "metadata": params.get("metadata", {}),
            "status": "issued",
            "livemode": False,
        }
        self.credit_notes[note["id"]] = note
        self._event("credit_note.created", note)
        return note

    def _credit_note_list(self, params: dict[str, Any]) -> dict[str, Any]:
        rows = [
            c
            for c in self.credit_notes.values()
            if "invoice" not in params or c["invoice"] == params["invoice"]
        ]
        return {"object": "list", "data": rows, "has_more": False, "url": "/v1/credit_notes"}

    # --- webhooks -------------------------------------------------------------------------

    def signed_webhook(
        self, event: dict[str, Any], *, secret: str | None = None, timestamp: int | None = None
    ) -> tuple[bytes, str]:
        """(raw body, ``Stripe-Signature`` header) as Stripe would POST them."""
        payload = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(
            payload, secret or self.webhook_secret, timestamp=timestamp
        )
        return payload.encode(), header

    def last_event(self, type_: str) -> dict[str, Any]:
        self.refresh()
        return next(e for e in reversed(self.events) if e["type"] == type_)
