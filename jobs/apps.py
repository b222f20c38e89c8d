from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Segmentation jobs"

    def ready(self):
        from jobs import signals  # noqa: F401  (connects the file clean-up)
