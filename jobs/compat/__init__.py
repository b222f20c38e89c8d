"""Endpoints that speak other servers' protocols, so their clients work unchanged.

max_api: IBM's MAX Image Segmenter (`/model/predict`, `/model/metadata`, `/model/labels`).
pixellib_api: the PixelLib + Flask tutorial API used by iOS apps (`/semantic`, `/instance`).
removebg: remove.bg's API (`POST /v1.0/removebg`, the key in `X-Api-Key`), as cutout jobs.
rembg: rembg's HTTP server (`POST /api/remove` with a file, `GET /api/remove?url=`), as cutout jobs.
All run ordinary jobs through the normal queue and answer when the job has finished.
"""
