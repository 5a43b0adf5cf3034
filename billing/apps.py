from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing: catalog, contracts, rating and invoicing"

    def ready(self) -> None:
        from metering.metrics import register_gauge

        from .rating.due import rating_lag
        from .rating.unbilled import unbilled_events_gauge, unbilled_rows_gauge

        register_gauge(rating_lag)
        register_gauge(unbilled_events_gauge)
        register_gauge(unbilled_rows_gauge)
