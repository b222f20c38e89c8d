from django.contrib import admin
from django.utils.html import format_html, format_html_join

from .files import job_file_names, signed_file_path
from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "task", "model", "status", "created_at", "duration"]
    list_filter = ["status", "task", "model"]
    list_select_related = ["owner"]
    search_fields = ["id"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    # Jobs are created through the API; the admin inspects them and may delete them.
    readonly_fields = [f.name for f in Job._meta.fields] + ["images"]
    fieldsets = [
        (None, {"fields": ["id", "owner", "task", "model", "status", "options", "images"]}),
        ("Input", {"fields": ["input", "input_name", "input_width", "input_height"]}),
        (
            "Times",
            {
                "fields": [
                    "created_at",
                    "started_at",
                    "finished_at",
                    "queue_ms",
                    "inference_ms",
                    "rendering_ms",
                ]
            },
        ),
        ("Outcome", {"fields": ["attempts", "worker", "error_code", "error_message", "result", "outputs"]}),
    ]

    def has_add_permission(self, request):
        return False

    def get_search_results(self, request, queryset, search_term):
        # Ids are UUIDs: match them exactly instead of a LIKE over a UUID column.
        try:
            return queryset.filter(id=search_term.strip()), False
        except Exception:  # not a UUID: fall back to Django's own search
            return super().get_search_results(request, queryset, search_term)

    @admin.display(description="duration")
    def duration(self, job):
        return f"{job.duration_ms} ms" if job.duration_ms is not None else "-"

    @admin.display(description="images")
    def images(self, job):
        # Admin sessions are not API tokens: the pages use signed file URLs instead.
        names = sorted(job_file_names(job))
        return format_html_join(
            "",
            '<figure style="display:inline-block;margin:0 12px 12px 0"><a href="{0}">'
            '<img src="{0}" style="max-width:360px;max-height:360px;border:1px solid #ccc"></a>'
            "<figcaption>{1}</figcaption></figure>",
            ((signed_file_path(job, name), name) for name in names),
        ) or format_html("<em>none</em>")
