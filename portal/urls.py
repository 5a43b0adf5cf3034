from django.urls import path

from . import views

app_name = "portal"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("usage.csv", views.usage_csv, name="usage-csv"),
    path("keys", views.key_create, name="key-create"),
    path("keys/<int:key_id>/revoke", views.key_revoke, name="key-revoke"),
]
