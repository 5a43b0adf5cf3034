from django.contrib import admin

from .models import CapacityPool, Issuer, Product


@admin.register(Issuer)
class IssuerAdmin(admin.ModelAdmin):
    list_display = ["key", "legal_name", "country", "vat_id", "invoice_prefix", "rounding"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "meter", "filter", "unit", "unit_size"]
    list_filter = ["meter"]
    search_fields = ["key", "name"]


@admin.register(CapacityPool)
class CapacityPoolAdmin(admin.ModelAdmin):
    list_display = ["region", "gpu_model", "gpus", "valid_from"]
    list_filter = ["region", "gpu_model"]
