"""The alert email (Django's email backend: console unless SMTP is configured)."""

from django.core.mail import send_mail
from django.utils import timezone

from tenancy.models import Membership

from .models import AlertFiring


def alert_email_send(*, firing_id: int) -> bool:
    """Email one firing to the alert's addresses (default: the org's owners), once: a
    firing already emailed is skipped. Returns whether an email went out."""
    firing = AlertFiring.objects.select_related("alert", "org", "period").get(pk=firing_id)
    if firing.emailed_at is not None:
        return False
    recipients = list(firing.alert.emails) or sorted(
        {
            email
            for email in Membership.objects.filter(
                org_id=firing.org_id, role=Membership.Role.OWNER
            ).values_list("user__email", flat=True)
            if email
        }
    )
    if not recipients:
        return False
    alert = firing.alert
    subject = f"[Tessera] {firing.org.name}: {alert}"
    body = (
        f"{firing.message}\n\n"
        f"Org: {firing.org.name} ({firing.org.slug})\n"
        f"Billing period: {firing.period.start:%Y-%m-%d} to {firing.period.end:%Y-%m-%d} "
        "(end exclusive)\n"
        f"Alert: {alert.get_kind_display()}, threshold {alert.threshold_label}\n\n"
        "Amounts exclude VAT. This alert fires once per threshold and billing period; see "
        "the Alerts page of the usage portal.\n"
    )
    send_mail(subject, body, None, recipients)
    AlertFiring.objects.filter(pk=firing.pk).update(emailed_at=timezone.now())
    return True
