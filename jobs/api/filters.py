import django_filters

from jobs.models import Job
from workers.catalog import MODELS, TASKS


class JobFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Job.Status.choices)
    task = django_filters.ChoiceFilter(choices=[(t, t) for t in TASKS])
    model = django_filters.ChoiceFilter(choices=[(m, m) for m in MODELS])

    class Meta:
        model = Job
        fields = ["status", "task", "model"]
