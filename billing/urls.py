from django.urls import include, path

from . import apis

urlpatterns = [
    path("products", apis.ProductListApi.as_view(), name="products"),
    path("", include("billing.invoicing.urls")),
]
