"""Alert writes: set alerts, evaluate them after a rating, fire each once per period.

Firing is one INSERT guarded by a unique constraint (``AlertFiring``): whoever inserts first
fires; a re-rating, beat's backstop or a concurrent evaluation hits the constraint and sends
nothing. The ``alert.triggered`` webhook event is stored in the same transaction (an
outbox); the email is sent by a task enqueued on commit.
"""

import logging
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import DomainError, ErrorCode, ErrorKind
from metering import metrics
from tenancy.models import Org
from webhooks.models import EventType
from webhooks.services import webhook_event_emit

from ..models import BillingPeriod, Product
from ..selectors import current_period
from .evaluation import Reading, readings
from .models import Alert, AlertFiring
from .tasks import alert_email_on_commit

log = logging.getLogger(__name__)
Kind = Alert.Kind
MAX_WINDOW_HOURS = 24 * 90
MAX_EMAILS = 10


class AlertError(DomainError):
    """An alert that cannot be set as asked (SPEC §5); the offending input is named."""

    codes = {
        "invalid_kind": ErrorCode(ErrorKind.INVALID, "Not one of the alert kinds."),
        "invalid_threshold": ErrorCode(
            ErrorKind.INVALID, "A threshold above 0 (4 decimals; a utilization at most 100)."
        ),
        "invalid_currency": ErrorCode(ErrorKind.INVALID, "Not an ISO 4217 currency code."),
        "invalid_product": ErrorCode(ErrorKind.INVALID, "Only reservation alerts name a product."),
        "invalid_window": ErrorCode(ErrorKind.INVALID, "The hours watched are out of range."),
        "invalid_emails": ErrorCode(ErrorKind.INVALID, "An address that is not an email."),
    }

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(code, message, {field: [message]} if field else None)
        self.field = field


def _threshold(kind: str, raw: Any) -> Decimal:
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        raise AlertError(
            "invalid_threshold", f"{raw!r} is not a decimal number.", "threshold"
        ) from None
    if not value.is_finite() or value <= 0:
        raise AlertError("invalid_threshold", "The threshold must be above 0.", "threshold")
    if value != value.quantize(Decimal("0.0001")) or value >= Decimal(10) ** 16:
        raise AlertError(
            "invalid_threshold", "At most 16 digits and 4 decimal places.", "threshold"
        )
    if kind == Kind.RESERVATION_UTILIZATION_BELOW and value > 100:
        raise AlertError("invalid_threshold", "A utilization is at most 100%.", "threshold")
    return value


def _emails(emails: Iterable[str]) -> list[str]:
    result = [e.strip() for e in emails if e and e.strip()]
    if len(result) > MAX_EMAILS:
        raise AlertError("invalid_emails", f"At most {MAX_EMAILS} addresses.", "emails")
    for email in result:
        try:
            validate_email(email)
        except ValidationError:
            raise AlertError(
                "invalid_emails", f"{email!r} is not an email address.", "emails"
            ) from None
    return list(dict.fromkeys(result))


def alert_create(
    *,
    org: Org,
    kind: str,
    threshold: Any,
    currency: str | None = None,
    product: Product | None = None,
    window_hours: int = 24,
    name: str = "",
    emails: Iterable[str] = (),
    created_by: Any = None,
) -> Alert:
    """Set an alert for ``org`` (SPEC §5). Amount thresholds are in ``currency`` (default:
    the org's); ``product`` and ``window_hours`` are for reservation utilization only.
    Raises ``AlertError`` naming the field."""
    if kind not in Kind.values:
        raise AlertError("invalid_kind", f"kind must be one of {', '.join(Kind.values)}.", "kind")
    value = _threshold(kind, threshold)
    percent = kind in Alert.PERCENT_KINDS
    code = "" if percent else (currency or org.currency).upper()
    if not percent and (len(code) != 3 or not code.isalpha()):
        raise AlertError("invalid_currency", f"{code!r} is not an ISO 4217 code.", "currency")
    if product is not None and kind != Kind.RESERVATION_UTILIZATION_BELOW:
        raise AlertError(
            "invalid_product", "Only a reservation alert watches a product.", "product"
        )
    if not 1 <= window_hours <= MAX_WINDOW_HOURS:
        raise AlertError(
            "invalid_window", f"window_hours must be 1 to {MAX_WINDOW_HOURS}.", "window_hours"
        )
    return Alert.objects.create(
        org=org,
        kind=kind,
        threshold=value,
        currency=code,
        product=product,
        window_hours=window_hours,
        name=name.strip()[:200],
        emails=_emails(emails),
        created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
    )


def alert_update(
    *,
    alert: Alert,
    threshold: Any = None,
    name: str | None = None,
    emails: Iterable[str] | None = None,
    active: bool | None = None,
) -> Alert:
    """Change what is given. A new threshold may fire again in a period where the old one
    fired (it is another threshold)."""
    if threshold is not None:
        alert.threshold = _threshold(alert.kind, threshold)
    if name is not None:
        alert.name = name.strip()[:200]
    if emails is not None:
        alert.emails = _emails(emails)
    if active is not None:
        alert.active = active
    alert.save()
    return alert


def alert_delete(*, alert: Alert) -> None:
    """Delete the alert and its firings."""
    alert.delete()


# --- evaluation -----------------------------------------------------------------------------


def alerts_evaluate(*, period_id: int, now: datetime | None = None) -> list[AlertFiring]:
    """Evaluate every active alert of the period's org against the period as last rated;
    fire those that crossed and have not fired for this threshold and period. Returns the
    new firings (none on a re-evaluation)."""
    now = now or timezone.now()
    period = BillingPeriod.objects.select_related("org").get(pk=period_id)
    alerts = list(Alert.objects.filter(org_id=period.org_id, active=True))
    fired = []
    for alert in alerts:
        for reading in readings(alert=alert, period=period, now=now):
            if reading.crossed:
                firing = _fire(alert, period, reading, now)
                if firing is not None:
                    fired.append(firing)
    return fired


def _fire(
    alert: Alert, period: BillingPeriod, reading: Reading, now: datetime
) -> AlertFiring | None:
    try:
        with transaction.atomic():
            firing = AlertFiring.objects.create(
                org_id=period.org_id,
                alert=alert,
                period=period,
                threshold=alert.threshold,
                subject=reading.subject,
                value=reading.value,
                currency=alert.currency,
                message=reading.message[:500],
                fired_at=now,
            )
            webhook_event_emit(
                org=period.org, type=EventType.ALERT_TRIGGERED, data=alert_event_data(firing)
            )
            alert_email_on_commit(firing_id=firing.pk)
    except IntegrityError:
        return None  # fired already for this threshold and period
    return firing


def _plain(number: Decimal) -> str:
    """A decimal without trailing zeros, never in exponent form: 5000.0000 → "5000"."""
    return f"{number.normalize():f}"


def alert_event_data(firing: AlertFiring) -> dict[str, Any]:
    """``data`` of ``alert.triggered``: the alert, the period, what crossed and its value."""
    alert, period = firing.alert, firing.period
    return {
        "id": firing.pk,
        "org": period.org.slug,
        "alert": {
            "id": alert.pk,
            "kind": alert.kind,
            "name": alert.name,
            "threshold": _plain(firing.threshold),
            "currency": alert.currency or None,
            "window_hours": alert.window_hours
            if alert.kind == Kind.RESERVATION_UTILIZATION_BELOW
            else None,
        },
        "period": {"start": period.start, "end": period.end},
        "subject": firing.subject or None,
        "value": _plain(firing.value),
        "unit": "percent" if alert.kind in Alert.PERCENT_KINDS else alert.currency,
        "message": firing.message,
        "fired_at": firing.fired_at,
    }


def alerts_after_rating(*, period_id: int, org_id: int) -> None:
    """The hook ``period_rate`` calls once a rating has committed. One indexed query for an
    org without alerts. A failure is logged and counted, never raised: the rating stands,
    and beat's ``billing.alerts.evaluate_all`` evaluates again."""
    try:
        if Alert.objects.filter(org_id=org_id, active=True).exists():
            alerts_evaluate(period_id=period_id)
    except Exception:
        metrics.TASK_FAILURES.labels(task="billing.alerts.evaluate").inc()
        log.exception("alert evaluation failed for period %s", period_id)


def alerts_evaluate_all(*, now: datetime | None = None) -> tuple[int, int]:
    """Evaluate the current period of every org with an active alert (beat's backstop and
    ``manage.py evaluate_alerts``). One org's failure is counted and skipped. Returns
    (new firings, orgs that failed)."""
    now = now or timezone.now()
    fired = failed = 0
    org_ids = Alert.objects.filter(active=True).values_list("org_id", flat=True).distinct()
    for org in Org.objects.filter(pk__in=org_ids).order_by("pk"):
        period = current_period(org=org, at=now)
        if period is None:
            continue
        try:
            fired += len(alerts_evaluate(period_id=period.pk, now=now))
        except Exception:
            failed += 1
            metrics.TASK_FAILURES.labels(task="billing.alerts.evaluate").inc()
            log.exception("alert evaluation failed for org %s", org.slug)
    return fired, failed
