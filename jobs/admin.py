import json

from django.contrib import admin, messages
from django.db.models import Count
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from core.specs import CUTOUT, INSTANCE, MATTE, SEMANTIC
from jobs.api.files import job_file_names, signed_file_path
from jobs.lifecycle.services import run_again
from jobs.models import Batch, Job, WebhookDelivery
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


def _table(headers, rows):
    """An HTML table of `headers` (names) and `rows` (tuples of values), all escaped."""
    head = format_html_join("", "<th>{}</th>", ((name,) for name in headers))
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((v,) for v in row)),) for row in rows)
    )
    return format_html('<table class="job-summary"><tr>{}</tr>{}</table>', head, body)


def _percent(fraction):
    return f"{fraction * 100:.2f} %"


def _box(box):
    x, y, width, height = box
    return f"{x}, {y}, {width} x {height}"


def _semantic_table(summary):
    return _table(
        ["id", "label", "pixels", "fraction"],
        [(c["id"], c["label"], f"{c['pixels']:,}", _percent(c["fraction"])) for c in summary["classes"]],
    )


def _instance_table(summary):
    rows = [
        (i["index"], i["label"], f"{i['score']:.3f}", _box(i["bbox"]), f"{i['area']:,}")
        for i in summary["instances"]
    ]
    table = _table(["#", "label", "score", "box (x, y, width x height)", "pixels"], rows)
    budget = summary.get("polygon_budget")
    if not budget:
        return table
    reduced = [word for word in ("simplified", "truncated") if budget[word]]
    return format_html(
        "{}<p>polygons: {} points of {}{}</p>",
        table,
        f"{budget['points']:,}",
        f"{budget['max_points']:,}",
        f", {' and '.join(reduced)}" if reduced else "",
    )


def _matte_table(summary):
    return _table(
        ["foreground", "foreground fraction", "mean alpha"],
        [(summary["foreground"], _percent(summary["foreground_fraction"]), f"{summary['mean_alpha']:.3f}")],
    )


def _cutout_table(summary):
    crop = summary.get("crop")
    return _table(
        ["foreground", "foreground fraction", "foreground box", "crop", "background"],
        [
            (
                ", ".join(summary.get("classes", [])),
                _percent(summary["foreground_fraction"]),
                _box(summary["foreground_box"]) if summary.get("foreground_box") else "-",
                _box(crop) if crop else "-",
                summary.get("background", "-"),
            )
        ],
    )


SUMMARY_TABLES = {
    SEMANTIC: _semantic_table,
    INSTANCE: _instance_table,
    MATTE: _matte_table,
    CUTOUT: _cutout_table,
}


def summary_table(job):
    """A finished job's summary as a table for people, its raw JSON folded below it."""
    if not job.result:
        return mark_safe("<em>none</em>")
    try:
        table = SUMMARY_TABLES[job.task](job.result)
    except (KeyError, TypeError, ValueError):  # a summary of another shape: the JSON alone
        table = mark_safe("<em>no table for this summary</em>")
    # Compact: indented, an instance's polygons would take a line per number.
    return format_html(
        '{}<details><summary>raw JSON</summary><pre class="job-json">{}</pre></details>',
        table,
        json.dumps(job.result),
    )


def _report(request, changed, selected, done, skipped):
    """A message for an action that applies to some of the selected jobs only."""
    text = f"{changed} job{'' if changed == 1 else 's'} {done}."
    if selected > changed:
        text += f" {selected - changed} left as they were: they {skipped}."
    messages.success(request, text)


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
    # Short values, and a rule that keeps each row on one line (jobs/static/jobs/admin.css).
    list_display = ["short_id", "owner_name", "task", "model", "status", "error_code", "created", "duration"]
    list_filter = ["status", "task", "model"]
    list_select_related = ["owner"]
    search_fields = ["id"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    # Jobs are created through the API; the admin inspects them, cancels or reruns them,
    # and may delete them.
    readonly_fields = [f.name for f in Job._meta.fields] + ["images", "summary"]
    inlines = [WebhookDeliveryInline]
    actions = ["cancel_jobs", "run_failed_jobs_again", "redeliver_webhooks"]
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
        ("Outcome", {"fields": ["attempts", "worker", "error_code", "error_message", "summary", "outputs"]}),
        ("Webhook", {"fields": ["webhook_url", "webhook_events"]}),
    ]

    class Media:
        css = {"all": ["jobs/admin.css"]}

    def has_add_permission(self, request):
        return False

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request, queryset):
        # As POST /jobs/{id}/cancel/: the transition alone. A queued job's message then
        # finds it canceled and claims nothing; a running attempt discards its results.
        canceled = sum(job.cancel() for job in queryset.filter(status__in=Job.ACTIVE))
        _report(request, canceled, queryset.count(), "canceled", "were not queued or running")

    @admin.action(description="Run failed jobs again")
    def run_failed_jobs_again(self, request, queryset):
        queued = sum(run_again(job) for job in queryset.filter(status=Job.Status.FAILED))
        _report(request, queued, queryset.count(), "queued again", "had not failed")

    @admin.action(description="Redeliver the webhooks of the selected jobs")
    def redeliver_webhooks(self, request, queryset):
        _redeliver(request, WebhookDelivery.objects.filter(job__in=queryset))

    def get_search_results(self, request, queryset, search_term):
        # Ids are UUIDs: match them exactly instead of a LIKE over a UUID column.
        try:
            return queryset.filter(id=search_term.strip()), False
        except Exception:  # not a UUID: fall back to Django's own search
            return super().get_search_results(request, queryset, search_term)

    @admin.display(description="id", ordering="id")
    def short_id(self, job):
        return format_html('<span title="{0}">{1}</span>', job.id, str(job.id)[:8])

    @admin.display(description="owner", ordering="owner__username")
    def owner_name(self, job):
        return Truncator(job.owner.username).chars(20)

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, job):
        return job.created_at.strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="summary")
    def summary(self, job):
        return summary_table(job)

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


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    """Batches are made through the API and listed here, read-only; their jobs have their own
    pages. Deleting one is the API's DELETE, which cancels its unfinished jobs first."""

    list_display = ["id", "owner", "created_at", "finished_at", "job_count"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Batch._meta.fields]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(job_count=Count("jobs"))

    @admin.display(description="jobs", ordering="job_count")
    def job_count(self, batch):
        return batch.job_count

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
