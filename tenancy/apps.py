from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "tenancy"
    verbose_name = "Tenancy: orgs, users and API keys"

    def ready(self) -> None:
        from . import schema  # noqa: F401 - registers the OpenAPI auth scheme
