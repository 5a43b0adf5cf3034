from django.urls import path

from . import apis

urlpatterns = [
    path("webhook-endpoints", apis.EndpointListCreateApi.as_view(), name="webhook-endpoints"),
    path(
        "webhook-endpoints/<int:endpoint_id>",
        apis.EndpointDetailApi.as_view(),
        name="webhook-endpoint",
    ),
    path(
        "webhook-endpoints/<int:endpoint_id>/rotate-secret",
        apis.SecretRotateApi.as_view(),
        name="webhook-endpoint-rotate",
    ),
    path(
        "webhook-endpoints/<int:endpoint_id>/deliveries",
        apis.DeliveryListApi.as_view(),
        name="webhook-deliveries",
    ),
    path(
        "webhook-deliveries/<int:delivery_id>",
        apis.DeliveryDetailApi.as_view(),
        name="webhook-delivery",
    ),
    path(
        "webhook-deliveries/<int:delivery_id>/replay",
        apis.DeliveryReplayApi.as_view(),
        name="webhook-delivery-replay",
    ),
]
