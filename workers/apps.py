from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Segmentation workers"

    def ready(self):
        # Worker signal handlers are only connected inside a Celery worker; importing them
        # elsewhere is harmless because the signals never fire there.
        from workers import signals  # noqa: F401
