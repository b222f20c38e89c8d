from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import JobFileView, JobViewSet, ModelListView

router = SimpleRouter()
router.register("jobs", JobViewSet, basename="job")

urlpatterns = [
    path("models/", ModelListView.as_view(), name="model-list"),
    path("jobs/<uuid:pk>/files/<str:name>", JobFileView.as_view(), name="job-file"),
    *router.urls,
]
