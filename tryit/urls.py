from django.urls import path

from tryit.views import page

urlpatterns = [path("", page, name="try-page")]
