import django_filters

from core.specs import TASKS
from jobs.models import Job


class JobFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Job.Status.choices)
    task = django_filters.ChoiceFilter(choices=[(t, t) for t in TASKS])
    # Any name: a job keeps its model's name after the model is retired.
    model = django_filters.CharFilter(max_length=64)

    class Meta:
        model = Job
        fields = ["status", "task", "model"]
