from django.db.models import QuerySet

from .models import Product


def products_list() -> QuerySet[Product]:
    """The catalog is the same for every org."""
    return Product.objects.select_related("meter")
