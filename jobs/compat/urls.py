from django.urls import path

from jobs.compat import max_api, pixellib_api, rembg, removebg

urlpatterns = [
    path("model/predict", max_api.PredictView.as_view(), name="max-predict"),
    path("model/metadata", max_api.MetadataView.as_view(), name="max-metadata"),
    path("model/labels", max_api.LabelsView.as_view(), name="max-labels"),
    path("semantic", pixellib_api.SemanticView.as_view(), name="pixellib-semantic"),
    path("instance", pixellib_api.InstanceView.as_view(), name="pixellib-instance"),
    path("v1.0/removebg", removebg.RemoveBgView.as_view(), name="removebg"),
    path("api/remove", rembg.RembgView.as_view(), name="rembg-remove"),
]
