from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "web"
    verbose_name = "Web: layout, login and charts shared by the portals"
