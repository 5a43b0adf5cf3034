from django.urls import path

from . import apis

urlpatterns = [
    path("events", apis.EventsIngestApi.as_view(), name="events-ingest"),
    path("meters", apis.MeterListApi.as_view(), name="meters"),
    path("allocations", apis.AllocationListCreateApi.as_view(), name="allocations"),
    path(
        "allocations/<int:allocation_id>/end",
        apis.AllocationEndApi.as_view(),
        name="allocation-end",
    ),
]
