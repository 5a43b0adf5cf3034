from django.urls import include, path

from .apis import catalog, contracts, summary, unbilled, usage

urlpatterns = [
    path("products", catalog.ProductListApi.as_view(), name="products"),
    path("usage", usage.UsageApi.as_view(), name="usage"),
    path("rate-cards", catalog.RateCardListApi.as_view(), name="rate-cards"),
    path("contracts", contracts.ContractListApi.as_view(), name="contracts"),
    path("contracts/<int:contract_id>", contracts.ContractDetailApi.as_view(), name="contract"),
    path("orgs/<slug:org>/summary", summary.OrgSummaryApi.as_view(), name="org-summary"),
    path(
        "orgs/<slug:org>/reservation-hours",
        summary.ReservationHoursApi.as_view(),
        name="reservation-hours",
    ),
    path(
        "orgs/<slug:org>/billing-details",
        contracts.OrgBillingDetailsApi.as_view(),
        name="org-billing-details",
    ),
    path("", include("billing.alerts.urls")),
    path("unbilled-usage", unbilled.UnbilledUsageApi.as_view(), name="unbilled-usage"),
    path("", include("billing.deals.urls")),
    path("", include("billing.invoicing.urls")),
]
