from django.urls import path
from rest_framework.routers import SimpleRouter

from jobs.api.batches import BatchViewSet
from jobs.api.views import AccountView, JobFileView, JobViewSet, ModelListView, RotateWebhookSecretView

router = SimpleRouter()
router.register("jobs", JobViewSet, basename="job")
router.register("batches", BatchViewSet, basename="batch")

urlpatterns = [
    path("models/", ModelListView.as_view(), name="model-list"),
    path("account/", AccountView.as_view(), name="account"),
    path(
        "account/rotate-webhook-secret/",
        RotateWebhookSecretView.as_view(),
        name="account-rotate-webhook-secret",
    ),
    path("jobs/<uuid:pk>/files/<str:name>", JobFileView.as_view(), name="job-file"),
    *router.urls,
]
