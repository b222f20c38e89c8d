"""Endpoints that speak other servers' protocols, so their clients work unchanged.

max_api: IBM's MAX Image Segmenter (`/model/predict`, `/model/metadata`, `/model/labels`).
pixellib_api: the PixelLib + Flask tutorial API used by iOS apps (`/semantic`, `/instance`).
Both run ordinary jobs through the normal queue and answer when the job has finished.
"""
