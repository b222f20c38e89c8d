from django.apps import AppConfig


class TryitConfig(AppConfig):
    name = "tryit"
    verbose_name = "Try it in a browser"
