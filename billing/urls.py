from django.urls import include, path

from . import apis

urlpatterns = [
    path("products", apis.ProductListApi.as_view(), name="products"),
    path("orgs/<slug:org>/summary", apis.OrgSummaryApi.as_view(), name="org-summary"),
    path(
        "orgs/<slug:org>/billing-details",
        apis.OrgBillingDetailsApi.as_view(),
        name="org-billing-details",
    ),
    path("contracts", apis.ContractListApi.as_view(), name="contracts"),
    path("contracts/<int:contract_id>", apis.ContractDetailApi.as_view(), name="contract"),
    path("", include("billing.deals.urls")),
    path("", include("billing.invoicing.urls")),
]
