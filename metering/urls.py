from django.urls import path

from . import apis

urlpatterns = [
    path("events", apis.EventsIngestApi.as_view(), name="events-ingest"),
    path("usage", apis.UsageApi.as_view(), name="usage"),
    path("meters", apis.MeterListApi.as_view(), name="meters"),
]
