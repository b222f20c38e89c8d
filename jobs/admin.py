from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from jobs.api.files import job_file_names, signed_file_path
from jobs.models import Job, WebhookDelivery
from jobs.webhooks import outbox


def attempt_table(delivery):
    """A delivery's attempts as a small HTML table, newest last."""
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td><td>{}</td><td><code>{}</code></td></tr>",
        (
            (
                a.number,
                a.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                a.status_code or "-",
                a.duration_ms,
                a.error or "-",
                a.response_body[:200],
            )
            for a in delivery.attempts.all()
        ),
    )
    if not rows:
        return format_html("<em>no attempt yet</em>")
    return format_html(
        "<table><tr><th>#</th><th>at (UTC)</th><th>status</th><th>took</th><th>error</th><th>answer</th></tr>{}</table>",
        rows,
    )


def _redeliver(request, deliveries):
    count = outbox.redeliver(list(deliveries))
    messages.success(request, f"{count} webhook deliver{'y' if count == 1 else 'ies'} queued again.")


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    can_delete = False
    fields = ["event", "state", "url", "created_at", "next_attempt_at", "attempt_log"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="attempts")
    def attempt_log(self, delivery):
        return attempt_table(delivery)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "event", "state", "created_at", "next_attempt_at", "failures"]
    list_filter = ["state", "event"]
    list_select_related = ["job"]
    actions = ["redeliver"]
    fields = [
        "id",
        "job",
        "event",
        "state",
        "url",
        "created_at",
        "next_attempt_at",
        "failures",
        "attempt_log",
        "payload",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    @admin.display(description="attempts")
    def attempt_log(self, delivery):
        return attempt_table(delivery)

    @admin.action(description="Redeliver the selected webhook deliveries")
    def redeliver(self, request, queryset):
        _redeliver(request, queryset)


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
    inlines = [WebhookDeliveryInline]
    actions = ["redeliver_webhooks"]
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
        ("Webhook", {"fields": ["webhook_url", "webhook_events"]}),
    ]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Redeliver the webhooks of the selected jobs")
    def redeliver_webhooks(self, request, queryset):
        _redeliver(request, WebhookDelivery.objects.filter(job__in=queryset))

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
