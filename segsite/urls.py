from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from jobs.ops import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("api/v1/", include("jobs.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    # The page to try the service in a browser, a client of the API above.
    path("", include("tryit.urls")),
    # Other servers' protocols at their own paths, so their clients need only a new host.
    path("", include("jobs.compat.urls")),
]

# The whole site speaks JSON errors, including Django's own 400/403/404/500.
handler400 = "jobs.api.errors.json_400"
handler403 = "jobs.api.errors.json_403"
handler404 = "jobs.api.errors.json_404"
handler500 = "jobs.api.errors.json_500"
