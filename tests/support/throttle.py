"""DRF's throttle rates in the type its throttles hold them."""

from typing import cast

from rest_framework.settings import APISettings


def rates_of(api_settings: APISettings) -> dict[str, str | None]:
    """``api_settings.DEFAULT_THROTTLE_RATES``, for ``SimpleRateThrottle.THROTTLE_RATES``: scope →
    rate ("3/min") or None.

    The cast: djangorestframework-stubs declare the setting ``dict[str, float | int | None]``
    and the throttle's attribute ``dict[str, str | None]``; DRF reads the values as strings
    (``SimpleRateThrottle.parse_rate``), which is what config/settings/api.py gives.
    """
    return cast("dict[str, str | None]", api_settings.DEFAULT_THROTTLE_RATES)
