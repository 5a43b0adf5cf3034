from django.urls import path

from . import views

app_name = "deals"
urlpatterns = [
    path("", views.deal_list, name="list"),
    path("new/", views.deal_new, name="new"),
    path("capacity/", views.capacity, name="capacity"),
    path("<int:deal_id>/", views.deal_detail, name="detail"),
    path("<int:deal_id>/edit/", views.deal_edit, name="edit"),
    path("<int:deal_id>/submit/", views.deal_submit, name="submit"),
    path("<int:deal_id>/approve/", views.deal_approve, name="approve"),
    path("<int:deal_id>/reject/", views.deal_reject, name="reject"),
    path("<int:deal_id>/sign/", views.deal_sign, name="sign"),
    path("<int:deal_id>/quote.pdf", views.deal_quote, name="quote"),
    path("contracts/<int:contract_id>/", views.contract_detail, name="contract"),
]
