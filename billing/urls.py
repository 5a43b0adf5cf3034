from django.urls import include, path

from . import apis

urlpatterns = [
    path("products", apis.ProductListApi.as_view(), name="products"),
    path("usage", apis.UsageApi.as_view(), name="usage"),
    path("rate-cards", apis.RateCardListApi.as_view(), name="rate-cards"),
    path("contracts", apis.ContractListApi.as_view(), name="contracts"),
    path("contracts/<int:contract_id>", apis.ContractDetailApi.as_view(), name="contract"),
    path("orgs/<slug:org>/summary", apis.OrgSummaryApi.as_view(), name="org-summary"),
    path(
        "orgs/<slug:org>/reservation-hours",
        apis.ReservationHoursApi.as_view(),
        name="reservation-hours",
    ),
    path("", include("billing.alerts.urls")),
    path("unbilled-usage", apis.UnbilledUsageApi.as_view(), name="unbilled-usage"),
    path("", include("billing.deals.urls")),
    path("", include("billing.invoicing.urls")),
]
