from django.urls import path

from . import apis

urlpatterns = [
    path("deals", apis.DealListApi.as_view(), name="deals"),
    path("deals/<int:deal_id>", apis.DealDetailApi.as_view(), name="deal"),
    path("deals/<int:deal_id>/simulate", apis.DealSimulateApi.as_view(), name="deal-simulate"),
    path("deals/<int:deal_id>/submit", apis.DealSubmitApi.as_view(), name="deal-submit"),
    path("deals/<int:deal_id>/approve", apis.DealApproveApi.as_view(), name="deal-approve"),
    path("deals/<int:deal_id>/reject", apis.DealRejectApi.as_view(), name="deal-reject"),
    path("deals/<int:deal_id>/sign", apis.DealSignApi.as_view(), name="deal-sign"),
    path("deals/<int:deal_id>/quote", apis.DealQuoteApi.as_view(), name="deal-quote"),
    path("capacity", apis.CapacityApi.as_view(), name="capacity"),
]
